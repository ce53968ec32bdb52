/*
 * Section families libbpf knows, a tail call, and a legacy SEC("maps")
 * struct bpf_map_def (which libbpf 1.x no longer loads, but old objects have).
 */
#include "sample.h"
#include <bpf/bpf_helpers.h>

struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def SEC("maps") legacy_counts = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = sizeof(__u32),
	.value_size = sizeof(__u64),
	.max_entries = 16,
};

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} jumps SEC(".maps");

SEC("kprobe/do_sys_openat2")
int on_open(void *ctx)
{
	__u32 key = 0;
	__u64 *count = bpf_map_lookup_elem(&legacy_counts, &key);

	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}

SEC("kretprobe/do_sys_openat2")
int on_open_ret(void *ctx)
{
	return 0;
}

SEC("uprobe")
int on_call(void *ctx)
{
	bpf_tail_call(ctx, &jumps, 1);
	return 0;
}

SEC("raw_tp/sys_enter")
int on_raw(void *ctx)
{
	return 0;
}

SEC("?fentry/do_unlinkat")
int on_unlink(void *ctx)
{
	return 0;
}

SEC("custom/section")
int on_custom(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "Proprietary";

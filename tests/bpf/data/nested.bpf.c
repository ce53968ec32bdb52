/*
 * Calls resolved three ways: to a static function of .text (relocation
 * against the section symbol), to a global function (relocation against its
 * symbol), and from .text to .text (no relocation).  The newest helper is
 * only in the innermost subprogram, yet it is the program's requirement.
 */
#include "sample.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 128);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

static __noinline __u64 leaf(__u32 key)
{
	__u64 *seen = bpf_map_lookup_elem(&counts, &key);

	return seen ? *seen : bpf_get_current_cgroup_id();
}

__noinline int middle(int x)
{
	return leaf(x) + 1;
}

SEC("tracepoint/syscalls/sys_enter_write")
int on_write(void *ctx)
{
	return leaf(3) + middle(4);
}

SEC("tracepoint/syscalls/sys_enter_read")
int on_read(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

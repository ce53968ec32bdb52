/* Helper sizes: one reloaded from the stack (cause of "R5 min value is
 * negative" on verifiers before 5.10), one clamped with LT_CLAMP. */
#include "sample.h"
#include <bpf/bpf_helpers.h>
#include "clamp.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(int));
	__uint(value_size, sizeof(int));
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[8]);
} scratch SEC(".maps");

struct exit_ctx {
	__u64 common;
	long id;
	long ret;
};

SEC("tp/syscalls/sys_exit_read")
int spilled_size(struct exit_ctx *ctx)
{
	__u32 key = 0;
	__u64 *buf = bpf_map_lookup_elem(&scratch, &key);
	/* volatile: the size lives on the stack, as when clang spills it across
	 * a call, and is reloaded for the helper: bounds the C test gave it are
	 * lost on verifiers before 5.10. */
	volatile __u64 len = ctx->ret;

	if (!buf || len > 64 || len == 0)
		return 0;
	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, buf, len);
	return 0;
}

SEC("tp/syscalls/sys_exit_write")
int clamped_size(struct exit_ctx *ctx)
{
	__u32 key = 0;
	__u64 *buf = bpf_map_lookup_elem(&scratch, &key);
	volatile __u64 stored = ctx->ret;
	__u64 len;

	if (!buf || stored > 64 || stored == 0)
		return 0;
	len = stored;
	LT_CLAMP(len, 1, 64);
	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, buf, len);
	return 0;
}

SEC("tp/syscalls/sys_exit_close")
int constant_size(struct exit_ctx *ctx)
{
	__u64 value = 7;

	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &value, sizeof(value));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

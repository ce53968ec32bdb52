/* A __noinline subprogram: bpf-to-bpf calls, so 4.16+. */
#include "sample.h"
#include <bpf/bpf_helpers.h>

static __noinline __u32 mix(__u32 x)
{
	return (x * 2654435761u) ^ bpf_get_prandom_u32();
}

SEC("tracepoint/syscalls/sys_enter_read")
int on_read(struct sys_enter_rw_args *ctx)
{
	return mix(ctx->fd) + mix(ctx->count);
}

char LICENSE[] SEC("license") = "GPL";

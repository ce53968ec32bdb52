/* Straight-line code over 4096 instructions: one program needs 5.2+. */
#include "sample.h"
#include <bpf/bpf_helpers.h>

#define R4(x) x x x x
#define R16(x) R4(R4(x))
#define R256(x) R16(R16(x))

SEC("tracepoint/syscalls/sys_enter_getpid")
int big(void *ctx)
{
	__u64 acc = 0;

	R256(R4(acc += bpf_get_prandom_u32();) R4(acc ^= bpf_get_prandom_u32();)
	     R4(acc -= bpf_get_prandom_u32();))
	return acc;
}

char LICENSE[] SEC("license") = "GPL";

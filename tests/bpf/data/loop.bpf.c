/* A bounded loop left as a loop (no #pragma unroll): a back-edge, so 5.3+. */
#include "sample.h"
#include <bpf/bpf_helpers.h>

#define BUF_LEN 64

SEC("tracepoint/syscalls/sys_enter_write")
int sum_bytes(struct sys_enter_rw_args *ctx)
{
	char buf[BUF_LEN];
	long n = ctx->count;
	int sum = 0;

	if (n > BUF_LEN)
		n = BUF_LEN;
	bpf_probe_read(buf, sizeof(buf), ctx->buf);
	for (long i = 0; i < n; i++)
		sum += buf[i];
	return sum;
}

char LICENSE[] SEC("license") = "GPL";

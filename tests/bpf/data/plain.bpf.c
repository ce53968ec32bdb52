/* A 4.14-compatible tracepoint program: probe_read + perf_event_output. */
#include "sample.h"
#include <bpf/bpf_helpers.h>

#define COMM_LEN 16
#define PREFIX_LEN 8

struct event {
	__u32 pid;
	__u32 pad;
	__u64 prefix;
	char comm[COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_write")
int on_write(struct sys_enter_rw_args *ctx)
{
	struct event e = {};

	e.pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e.comm, sizeof(e.comm));
	bpf_probe_read(&e.prefix, PREFIX_LEN, ctx->buf);
	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &e, sizeof(e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

/* bpf_ringbuf_output into a BPF_MAP_TYPE_RINGBUF: 5.8+. */
#include "sample.h"
#include <bpf/bpf_helpers.h>

#define RINGBUF_BYTES (1 << 16)

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, RINGBUF_BYTES);
} rb SEC(".maps");

SEC("tp/syscalls/sys_enter_write")
int on_write(void *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	bpf_ringbuf_output(&rb, &pid_tgid, sizeof(pid_tgid), 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

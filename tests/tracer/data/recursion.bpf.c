// SPDX-License-Identifier: GPL-2.0
/* recursion.bpf.c - a tracing program that fires another one inside it.
 *
 * getppid() of the process in `config` -> `outer` calls bpf_printk, whose
 * trace event (bpf_trace/bpf_trace_printk) runs `inner` on the same CPU
 * while `outer` is still active.  The kernel runs one tracing program at a
 * time per CPU, so it skips `inner` and, on kernels that count such misses,
 * adds one to its recursion_misses: what libtrace reports as `missed`.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32); /* tgid of the test process */
} config SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int outer(void *ctx)
{
	__u32 zero = 0;
	__u32 *tgid = bpf_map_lookup_elem(&config, &zero);

	if (tgid && *tgid == bpf_get_current_pid_tgid() >> 32)
		bpf_printk("libtrace recursion test");
	return 0;
}

SEC("raw_tp/bpf_trace_printk")
int inner(void *ctx)
{
	bpf_printk("libtrace recursion test, inner");
	return 0;
}

char _license[] SEC("license") = "GPL";

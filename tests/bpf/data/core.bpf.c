/* CO-RE field reads: relocations in .BTF.ext that need kernel BTF. */
#include "sample.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task_struct {
	int pid;
	int tgid;
	struct task_struct *real_parent;
} __attribute__((preserve_access_index));

SEC("tracepoint/sched/sched_process_exec")
int on_exec(void *ctx)
{
	struct task_struct *task = (void *)bpf_get_current_task();

	return BPF_CORE_READ(task, real_parent, tgid) + BPF_CORE_READ(task, pid);
}

char LICENSE[] SEC("license") = "GPL";

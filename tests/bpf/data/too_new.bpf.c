/* Deliberately incompatible with 5.10: bpf_get_current_task_btf came in 5.11.
 * The prediction must say it does not load there, and a 5.10 guest must
 * really refuse it (tests/matrix/test_prediction.py). */
#include "sample.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} stamp SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	__u32 zero = 0;
	__u64 now = (__u64)bpf_get_current_task_btf();

	bpf_map_update_elem(&stamp, &zero, &now, 0 /* BPF_ANY */);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

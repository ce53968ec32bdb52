/* Global variables: .bss, .data and .rodata, so 5.2+. */
#include "sample.h"
#include <bpf/bpf_helpers.h>

int hits;                        /* .bss */
int threshold = 3;               /* .data */
const volatile int enabled = 1;  /* .rodata, set by the loader */

SEC("tracepoint/syscalls/sys_enter_close")
int on_close(void *ctx)
{
	if (enabled && ++hits > threshold)
		hits = 0;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

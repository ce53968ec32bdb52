/*
 * Two hand-written control-flow graphs.  shared_exit jumps backwards to a
 * block that exits, which is no loop (pre-5.3 verifiers accept it: a cross
 * edge); count_to_four jumps backwards into a cycle (a back-edge).
 */
#include "sample.h"
#include <bpf/bpf_helpers.h>

SEC("tracepoint/syscalls/sys_enter_close")
__attribute__((naked)) int shared_exit(void)
{
	asm volatile(
	"	goto l1_%=;\n"
	"l0_%=:	r0 = 0;\n"
	"	exit;\n"
	"l1_%=:	r0 = 1;\n"
	"	if r0 == 1 goto l0_%=;\n"
	"	r0 = 2;\n"
	"	exit;\n"
	::: "memory");
}

SEC("tracepoint/syscalls/sys_enter_dup")
__attribute__((naked)) int count_to_four(void)
{
	asm volatile(
	"	r0 = 0;\n"
	"l0_%=:	r0 += 1;\n"
	"	if r0 < 4 goto l0_%=;\n"
	"	exit;\n"
	::: "memory");
}

char LICENSE[] SEC("license") = "GPL";

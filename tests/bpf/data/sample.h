/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The few types and UAPI constants the objinfo samples need, so that they
 * compile with clang and libbpf's bpf_helpers.h alone (no kernel headers).
 */
#ifndef LIBTRACE_TEST_SAMPLE_H
#define LIBTRACE_TEST_SAMPLE_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

/* include/uapi/linux/bpf.h */
enum {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PROG_ARRAY = 3,
	BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
};
#define BPF_F_CURRENT_CPU 0xffffffffULL

/* The argument block of syscalls:sys_enter_read/write (see its format file). */
struct sys_enter_rw_args {
	__u64 common;
	long id;
	long fd;
	const char *buf;
	long count;
};

#endif

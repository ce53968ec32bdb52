/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * A minimal stand-in for vmlinux.h: the fixed-width types, the few UAPI
 * constants the programs use, and only the kernel structs that the socket
 * identity reads, marked preserve_access_index so that libbpf relocates every
 * field access against the running kernel's BTF (CO-RE).  Field order and
 * completeness do not matter; names and types do.  Shipping this instead of a
 * generated vmlinux.h keeps the build independent of the build host's kernel.
 */
#ifndef LIBTRACE_CORE_TYPES_H
#define LIBTRACE_CORE_TYPES_H

typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

/* include/uapi/linux/bpf.h */
enum {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
};
enum { BPF_ANY = 0, BPF_NOEXIST = 1, BPF_EXIST = 2 };
#define BPF_F_CURRENT_CPU 0xffffffffULL
enum { BPF_RB_NO_WAKEUP = 1, BPF_RB_FORCE_WAKEUP = 2 };
enum { BPF_RB_AVAIL_DATA = 0 };

/* include/linux/socket.h, include/uapi/linux/in.h, include/linux/net.h */
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define SOCK_TYPE_MASK 0xf
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
/* include/uapi/linux/stat.h */
#define S_IFMT 00170000
#define S_IFSOCK 0140000
/* include/uapi/asm-generic/errno.h */
#define EINPROGRESS 115

/* User-space ABI structs (stable UAPI, read with probe_read_user). */
struct lt_iovec {
	__u64 iov_base;
	__u64 iov_len;
};
struct lt_user_msghdr {
	__u64 msg_name;
	__s32 msg_namelen;
	__u32 _pad0;
	__u64 msg_iov;
	__u64 msg_iovlen;
	__u64 msg_control;
	__u64 msg_controllen;
	__u32 msg_flags;
	__u32 _pad1;
};
struct lt_mmsghdr {
	struct lt_user_msghdr msg_hdr;
	__u32 msg_len;
	__u32 _pad;
};
/* sockaddr_in and sockaddr_in6 share family and port; the address follows. */
struct lt_sockaddr {
	__u16 family;
	__be16 port;
	__u32 v4_or_flowinfo; /* sin_addr for AF_INET, sin6_flowinfo for AF_INET6 */
	__u8 v6[16];          /* sin6_addr */
};

/* The layout of syscalls:sys_enter_* and sys_exit_* tracepoints
 * (/sys/kernel/tracing/events/syscalls/<event>/format): an 8-byte common
 * header, the syscall number, then each argument as 8 bytes. */
struct lt_sys_enter {
	__u64 common;
	__s64 syscall_nr;
	__u64 args[6];
};
struct lt_sys_exit {
	__u64 common;
	__s64 syscall_nr;
	__s64 ret;
};
#ifdef LT_WITH_BTF
/* Kernel structs for the socket identity, relocated by CO-RE. */
#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)
struct in6_addr {
	__u8 s6_addr[16];
};
struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
};
struct sock {
	struct sock_common __sk_common;
};
struct socket {
	short type;
	struct sock *sk;
};
struct inode {
	unsigned short i_mode;
};
struct file {
	struct inode *f_inode;
	void *private_data;
};
struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};
struct files_struct {
	struct fdtable *fdt;
};
struct kernfs_node {
	__u64 id; /* a u64 from 5.5 on (the only kernels that read it so) */
};
struct cgroup {
	struct kernfs_node *kn;
};
struct css_set {
	struct cgroup *dfl_cgrp;
};
struct task_struct {
	struct files_struct *files;
	char comm[16];
	struct css_set *cgroups;
	void *stack;
};
/* x86-64: the user registers saved at syscall entry; the syscall's
 * arguments are di, si, dx, r10, r8, r9 and stay there until the return. */
struct pt_regs {
	unsigned long r10;
	unsigned long r8;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
};
#pragma clang attribute pop
#endif /* LT_WITH_BTF */

#endif /* LIBTRACE_CORE_TYPES_H */

/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Layout shared by socket_trace.bpf.c, the compiled decoder and the Python
 * side, which is generated from this file (python -m libtrace.bpf.layout writes
 * libtrace/tracer/_layout.py: structs, enums, LT_FLAG_* and the valued defines,
 * each with its trailing comment; a test checks it is current).  Fixed-width types only, and every field
 * naturally aligned, so the layout is the same for clang -target bpf and for
 * ctypes on x86-64.
 */
#ifndef LIBTRACE_SOCKET_TRACE_H
#define LIBTRACE_SOCKET_TRACE_H

/* Largest payload one event can carry (the scratch event lives in a plain
 * array slot per CPU, since per-CPU map values stop at 32 KiB): with the ring
 * buffer, 64 KiB; with the perf buffer a little less, since a perf record's
 * size is a 16-bit field (8-byte record header, 4-byte sample size, the event
 * header, the payload: at most 65535).  The user's payload cap is clamped to
 * the variant's limit. */
#define MAX_PAYLOAD 65536
#define MAX_PAYLOAD_PERFBUF 65024
/* Scratch events per CPU, taken in turn: a kernel that preempts BPF programs on
 * syscall tracepoints (Debian's 7.3, lazy preemption) lets a second program run
 * on the same CPU while the first still fills its event (a power of two). */
#define SCRATCH_SLOTS 16
/* Default payload cap when the user sets none. */
#define DEFAULT_PAYLOAD_CAP 4096
/* iovecs followed per readv/writev/sendmsg/recvmsg call: the loops are
 * unrolled (4.14 has no bounded loops), so each one costs instructions. */
#define MAX_IOV 8
/* Messages followed per sendmmsg/recvmmsg call, and iovecs per message. */
#define MAX_MMSG 8
#define MAX_MMSG_IOV 2
/* With the ring buffer and the 5.15+ helpers, small data events are gathered
 * per CPU and output a batch at a time (one ring reservation for many): the
 * most a batch holds (the tracer may set less: a small ring), and the largest
 * event (header and payload) that goes through one; a larger one is output alone. */
#define BATCH_BYTES 4096
#define BATCH_EVENT_MAX 1024
/* A batch whose first event is older than this is output with its next one:
 * the reader's time order then waits for no CPU that gathers slowly. */
#define BATCH_AGE_NS 1000000
/* CPUs whose batches lt_flush_batches walks at most. */
#define BATCH_MAX_CPUS 1024
/* Sockets tracked at once (LRU: the oldest idle one goes first). */
#define MAX_CONNS 65536
/* No BTF: forked children remembered (child pid -> parent pid), and sockets
 * just closed (a parent that forks a handler closes its copy at once). */
#define MAX_FORKS 4096
#define MAX_CLOSED 1024
/* BTF: the slots of the memory of fds known not to be traced sockets (files,
 * pipes, unix sockets; a power of two: see not_socket_slot()), and those of
 * the thread groups' fd generations (a power of two: a thread group's slot is
 * its pid modulo it; see fd_gen()). */
#define NOT_SOCKET_SLOTS 65536
#define NOT_SOCKET_BITS 16
#define FD_GEN_SLOTS 32768
/* In-flight syscalls tracked at once (one per thread inside a syscall). */
#define MAX_INFLIGHT 16384
/* Entries of the pid and port filters. */
#define MAX_FILTER 64

/* Event types. */
enum lt_event_type {
	LT_EVENT_DATA = 1,    /* payload moved by a read/write-family syscall */
	LT_EVENT_CONNECT = 2, /* connect() on a traced socket succeeded or is in progress */
	LT_EVENT_ACCEPT = 3,  /* accept()/accept4() returned a new socket */
	LT_EVENT_CLOSE = 4,   /* close() of a traced socket */
	LT_EVENT_EXEC = 5,    /* a process called execve (Go TLS process watching) */
	LT_EVENT_EXIT = 6,    /* a thread group leader exited (Go TLS process watching) */
};

/* Direction of a data event, seen from the traced process. */
enum lt_direction {
	LT_EGRESS = 0,
	LT_INGRESS = 1,
};

/* Syscall that produced an event (user space reports it by name). */
enum lt_syscall {
	LT_SYS_UNKNOWN = 0,  /* a value this version does not know (user space) */
	LT_SYS_READ = 1,
	LT_SYS_WRITE,
	LT_SYS_READV,
	LT_SYS_WRITEV,
	LT_SYS_SENDTO,
	LT_SYS_RECVFROM,
	LT_SYS_SENDMSG,
	LT_SYS_RECVMSG,
	LT_SYS_SENDMMSG,
	LT_SYS_RECVMMSG,
	LT_SYS_CONNECT,
	LT_SYS_ACCEPT,
	LT_SYS_ACCEPT4,
	LT_SYS_CLOSE,
	LT_SYS_GO_TLS_READ,  /* crypto/tls.(*Conn).Read returned (uprobe) */
	LT_SYS_GO_TLS_WRITE, /* crypto/tls.(*Conn).writeRecordLocked: application data (uprobe) */
};

/* Event flags. */
#define LT_FLAG_NO_BTF 0x1       /* identity from connect/accept/bind tracking, not struct sock */
#define LT_FLAG_ADDR_FROM_CALL 0x2 /* remote address taken from the syscall's sockaddr */
#define LT_FLAG_PROBE_READ 0x4   /* built with bpf_probe_read (pre-5.5 kernels) */
#define LT_FLAG_PERFBUF 0x8      /* delivered through the perf buffer (pre-5.8 kernels) */
#define LT_FLAG_TLS 0x10         /* TLS plaintext from the Go crypto/tls uprobes */
#define LT_FLAG_PROC_LOOKUP 0x100 /* tuple completed in user space from /proc (never by BPF) */

/* Header of every event; data events are followed by `captured` payload bytes. */
struct lt_event {
	__u64 ts_ns;      /* bpf_ktime_get_ns() at syscall exit */
	__u64 cgroup_id;  /* 0 where bpf_get_current_cgroup_id is missing (< 4.18) */
	__u64 offset;     /* bytes this socket moved in this direction before this chunk */
	__u32 pid;        /* thread group id */
	__u32 tid;
	__s32 fd;
	__u32 size;       /* bytes the syscall moved for this chunk */
	__u32 captured;   /* payload bytes that follow (<= the cap) */
	__u16 flags;      /* LT_FLAG_* */
	__u8 type;        /* enum lt_event_type */
	__u8 direction;   /* enum lt_direction */
	__u16 family;     /* AF_INET or AF_INET6 */
	__u16 l4;         /* IPPROTO_TCP or IPPROTO_UDP */
	__u16 lport;      /* host byte order; 0 when unknown */
	__u16 rport;      /* host byte order; 0 when unknown */
	__u16 syscall;    /* enum lt_syscall */
	__u16 _pad;
	__u8 laddr[16];   /* IPv4 in the first 4 bytes; network byte order */
	__u8 raddr[16];
	char comm[16];
};


/* Configuration, in an array map rather than global data (.rodata needs 5.2). */
struct lt_config {
	__u32 self_pid;     /* the tracer's own thread group: never traced */
	__u32 payload_cap;  /* bytes copied per chunk, <= the variant's payload limit */
	__u32 filter_pids;  /* nonzero: only pids in the pid filter map */
	__u32 filter_ports; /* nonzero: only sockets with a port in the port filter map */
	__u32 wakeup_bytes; /* ring buffer: wake the reader once this much is pending */
	/* No BTF: offset of child_pid in sched_process_fork's record (its layout
	 * changed when the comms became __data_loc strings: 44, then 20). */
	__u32 fork_child_pid_offset;
	__u32 batch_bytes;  /* lt_exitr_*: output a CPU's batch once it holds this much; 0: no batches */
};

/* One CPU's batch (lt_exitr_* with the ring buffer): small data events back to
 * back, each 8-byte aligned as a ring record would be, output as one ring
 * record when the next would not fit and whenever user space runs
 * lt_flush_batches (before each read).  One reservation and commit per batch
 * instead of per event: they were a third of a data event's BPF time. */
struct lt_batch {
	__u64 busy;     /* 1 while a program or the flush fills or empties it */
	__u32 len;      /* bytes in data */
	__u32 count;    /* events in data */
	__u64 first_ns; /* the first event's timestamp */
	__u8 data[BATCH_BYTES + BATCH_EVENT_MAX];
};

/* BTF: one slot of the `fd_gens` array, the fd generation of the thread
 * group that holds it (see fd_gen()). */
struct lt_fd_gen {
	__u32 pid; /* the thread group (0: a free slot) */
	__u32 pad;
	__u64 gen; /* its generation */
};

/* What lt_flush_batches tells user space (its context, copied back). */
struct lt_flush_result {
	__u32 held; /* nonzero: a batch was held by a program filling it; run again */
};

/* Per-CPU counters, indexed by enum lt_counter. */
enum lt_counter {
	LT_COUNTER_EVENTS = 0, /* events output */
	LT_COUNTER_LOST,       /* events the buffer had no room for */
	LT_COUNTER_INFLIGHT_FULL,    /* syscalls whose arguments found inflight full: their bytes unseen */
	LT_COUNTER_CONNS_FULL,       /* sockets whose identity found conns full: their bytes unseen */
	LT_COUNTER_GO_INFLIGHT_FULL, /* Go TLS calls that found go_inflight full: their plaintext unseen */
	LT_COUNTER_MAX,
};

/* Key of a traced socket: a thread group's file descriptor. */
struct lt_conn_key {
	__u32 pid;
	__s32 fd;
};

/* What is known of a traced socket. */
struct lt_conn {
	__u64 offset[2];  /* per direction, indexed by enum lt_direction */
	__u16 family;
	__u16 l4;
	__u16 lport;
	__u16 rport;
	__u8 laddr[16];
	__u8 raddr[16];
};

/* Arguments of a syscall in flight, saved at enter for the exit
 * (user space saves them too, for threads already blocked at attach). */
struct lt_args {
	__u64 buf;   /* buffer, iovec array, msghdr or mmsghdr array */
	__u64 addr;  /* sockaddr pointer; for socket(): the type argument */
	__u32 count; /* iovcnt or vlen; for socket(): the family argument */
	__s32 fd;
	__u16 syscall;
	__u16 _pad[3];
};

/* ---- Go TLS (go_tls.bpf.c) ------------------------------------------- */

/* Go programs followed at once, and Go TLS calls in flight. */
#define MAX_GO_PROCS 4096
#define MAX_GO_INFLIGHT 16384

/* Calling conventions of crypto/tls.(*Conn).Read/Write on amd64. */
enum lt_go_abi {
	LT_GO_ABI_STACK = 0,    /* Go < 1.17: arguments and results on the stack */
	LT_GO_ABI_REGISTER = 1, /* Go >= 1.17 (ABIInternal): RAX, RBX, ...; g in R14 */
};

/* What the uprobes need to know of one attached Go process, written by user
 * space from the binary inspector (libtrace/tracer/golang) before attaching.
 * The offsets walk *tls.Conn -> net.Conn interface data word -> *net.netFD ->
 * poll.FD.Sysfd. */
struct lt_go_proc {
	__u32 abi;             /* enum lt_go_abi */
	__u32 _pad;
	__u64 conn_data;       /* tls.Conn.conn + 8: the interface's data pointer */
	__u64 tcpconn_netfd;   /* net.TCPConn.conn + net.conn.fd: the *netFD */
	__u64 netfd_sysfd;     /* net.netFD.pfd + poll.FD.Sysfd: the int fd */
};

#endif /* LIBTRACE_SOCKET_TRACE_H */

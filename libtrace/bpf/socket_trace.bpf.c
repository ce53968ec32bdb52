/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Socket data capture on syscall tracepoints.
 *
 * Theory of operation: each sys_enter_* program of a data syscall first asks
 * whether the fd is a traced socket (a known one in `conns`; with BTF, a file
 * the kernel says is an AF_INET/AF_INET6 socket, remembered either way), and
 * only then saves the syscall's arguments in `inflight`, keyed by thread, so
 * reads and writes of files and pipes cost a lookup or two and nothing more.
 * The matching sys_exit_* program
 * takes them back, and when the call moved bytes on a traced socket it copies
 * them (up to the payload cap) into a per-CPU scratch event and outputs one
 * event per contiguous chunk: a plain buffer, or each iovec of the
 * readv/writev/msghdr calls, or each message of the mmsg calls.  Every chunk
 * carries its socket's byte offset in its direction, so user space can order
 * chunks and see gaps (bytes moved beyond the iovecs followed here advance the
 * offset without an event).
 *
 * One source, several objects: libtrace/bpf/build.py compiles it once per
 * combination of the switches below, and the tracer loads the variant the
 * running kernel supports (or the one a user forces, to test old-kernel paths
 * on a new kernel):
 *   LT_RINGBUF          1: BPF ring buffer (5.8+); 0: perf event array (4.4+)
 *   LT_PROBE_READ_USER  1: bpf_probe_read_user/_kernel and the cgroup id
 *                       (5.5+); 0: bpf_probe_read (4.1+), cgroup id left 0
 *   LT_WITH_BTF         1: socket identity read from struct sock with CO-RE;
 *                       0: identity tracked from socket/bind/connect/accept,
 *                       completed by user space from /proc (no kernel BTF)
 * Portability to 4.14 is kept visible: loops are unrolled, the event is
 * assembled in a per-CPU map (512-byte stack), configuration lives in an
 * array map (no global data before 5.2), and every helper is inlined (no
 * bpf-to-bpf calls before 4.16).
 */
#ifndef LT_RINGBUF
#define LT_RINGBUF 1
#endif
#ifndef LT_PROBE_READ_USER
#define LT_PROBE_READ_USER 1
#endif
#ifndef LT_WITH_BTF
#define LT_WITH_BTF 1
#endif
#if !LT_WITH_BTF
#undef LT_WITH_BTF
#endif

#include "core_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#if LT_PROBE_READ_USER
#define read_user bpf_probe_read_user
#else
/* bpf_probe_read reads user and kernel memory alike on x86-64 before 5.5;
 * routing CO-RE reads through it too keeps the helper list 4.14-clean. */
#define read_user bpf_probe_read
#define bpf_probe_read_kernel bpf_probe_read
#endif
#include <bpf/bpf_core_read.h>
#include "socket_trace.h"
#include "clamp.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lt_config);
} config SEC(".maps");

#if LT_RINGBUF
#define LT_MAX_PAYLOAD MAX_PAYLOAD
#else
#define LT_MAX_PAYLOAD MAX_PAYLOAD_PERFBUF
#endif

/* The scratch buffer one event is assembled in before it is output. */
struct lt_event_buf {
	struct lt_event hdr;
	__u8 data[LT_MAX_PAYLOAD];
};

/* SCRATCH_SLOTS slots per CPU in a plain array (per-CPU values stop at
 * 32 KiB); the tracer sizes it to the possible CPUs before loading. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lt_event_buf);
} scratch SEC(".maps");

/* Per CPU: which of its scratch slots the next program takes. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} scratch_turn SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LT_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_INFLIGHT);
	__type(key, __u64);
	__type(value, struct lt_args);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_CONNS);
	__type(key, struct lt_conn_key);
	__type(value, struct lt_conn);
} conns SEC(".maps");

#ifdef LT_WITH_BTF
/* fds seen not to be traced sockets (files, pipes, unix sockets): a
 * direct-mapped cache whose every slot holds one tag, standing for a thread
 * group, an fd number and the group's fd generation when the kernel was asked
 * (see not_socket_tag()).  An array, not a hash: its lookup is a few inlined
 * instructions where a hash lookup cost ~31 ns, paid by a file's every read
 * and write, and by a socket's too, as a miss before its `conns` lookup.  Two
 * fds whose slots meet push each other out (each then asks the kernel once
 * more).  A tag is one aligned 8-byte store: two programs that write a slot at
 * once leave one tag or the other, never a mix of both. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NOT_SOCKET_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} not_sockets SEC(".maps");
_Static_assert(NOT_SOCKET_SLOTS == 1 << NOT_SOCKET_BITS, "not_socket_slot() takes NOT_SOCKET_BITS bits");

/* Per thread group: a generation that moves whenever an fd number may have
 * been freed (close, close_range, dup2/dup3 over an open fd, exec closing
 * close-on-exec fds).  A number that holds a file keeps that file until one
 * of those, so a `not_sockets` entry of the current generation is true.  An
 * array, not a hash: its lookup is a few inlined instructions, and a file's
 * read or write asks for the generation every time (a hash lookup cost about
 * a fifth of that path); a thread group shares its slot (pid modulo
 * FD_GEN_SLOTS) with the groups 32768 pids away, and takes it back from them
 * with a fresh generation. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FD_GEN_SLOTS);
	__type(key, __u32);
	__type(value, struct lt_fd_gen);
} fd_gens SEC(".maps");
#endif

#ifndef LT_WITH_BTF
/* A forked child's sockets are its parent's (a server that forks a handler per
 * connection, dnsmasq over TCP): without BTF nothing else says they are
 * sockets, so the child inherits the parent's entry on its first miss. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_FORKS);
	__type(key, __u32);   /* child pid */
	__type(value, __u32); /* parent's thread group */
} forks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_CLOSED);
	__type(key, struct lt_conn_key);
	__type(value, struct lt_conn);
} closed SEC(".maps");
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_FILTER);
	__type(key, __u32);
	__type(value, __u8);
} pid_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_FILTER);
	__type(key, __u32);
	__type(value, __u8);
} port_filter SEC(".maps");

#if LT_RINGBUF
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* resized by the tracer before load */
} events SEC(".maps");
#else
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");
#endif

#if LT_RINGBUF && defined(LT_WITH_BTF) && LT_PROBE_READ_USER
/* Batches exist where the lt_exitr_* programs do (5.15+: atomic exchange, and
 * BPF_PROG_TYPE_SYSCALL for lt_flush_batches). */
#define LT_BATCHES 1

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* resized to the possible CPUs by the tracer before load */
	__type(key, __u32);
	__type(value, struct lt_batch);
} batches SEC(".maps");
#endif

static __always_inline struct lt_config *get_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&config, &zero);
}

/* This CPU's scratch event. */
static __always_inline struct lt_event_buf *scratch_event(void)
{
	__u32 zero = 0;
	__u32 *turn = bpf_map_lookup_elem(&scratch_turn, &zero);
	__u32 key = bpf_get_smp_processor_id() * SCRATCH_SLOTS;

	/* Each program on this CPU takes the next slot: one that preempted
	 * another does not write over its event (output() checks the rest). */
	if (turn) {
		key += *turn & (SCRATCH_SLOTS - 1);
		*turn += 1;
	}
	return bpf_map_lookup_elem(&scratch, &key);
}

/* Atomically, though the counters are per CPU: where programs are preemptible
 * (Debian's 7.x), a program preempted between the load and the store of a
 * plain `+=` would write back over what another program on its CPU (or the
 * batches' flush) counted meanwhile, and `events` or `lost` would no longer
 * add up. */
static __always_inline void count(__u32 counter, __u64 n)
{
	__u64 *value = bpf_map_lookup_elem(&counters, &counter);

	if (value)
		__sync_fetch_and_add(value, n);
}

/* A map update that failed for want of room (not because BPF_NOEXIST found
 * the key there): counted, so that no drop in the kernel goes unsaid. */
static __always_inline void count_full(long ret, __u32 counter)
{
	if (ret && ret != -17 /* -EEXIST */)
		count(counter, 1);
}

/* Is this thread group traced at all? */
static __always_inline bool pid_traced(struct lt_config *cfg, __u32 pid)
{
	if (pid == cfg->self_pid)
		return false;
	if (cfg->filter_pids && !bpf_map_lookup_elem(&pid_filter, &pid))
		return false;
	return true;
}

static __always_inline bool port_traced(struct lt_config *cfg, __u16 lport, __u16 rport)
{
	__u32 l = lport, r = rport;

	if (!cfg->filter_ports)
		return true;
	return bpf_map_lookup_elem(&port_filter, &l) || bpf_map_lookup_elem(&port_filter, &r);
}

static __always_inline bool is_traced_fd(struct lt_conn_key *key);

/* Save a syscall's arguments for its exit program.  `data`: a data syscall,
 * whose arguments are saved only when fd is a traced socket. */
static __always_inline int save_args(__u64 fd, __u64 buf, __u64 addr, __u64 count,
				     __u16 syscall, bool data)
{
	struct lt_config *cfg = get_config();
	__u64 id = bpf_get_current_pid_tgid();
	struct lt_conn_key key = { .pid = id >> 32, .fd = fd };
	struct lt_args args = {};

	if (!cfg || !pid_traced(cfg, key.pid))
		return 0;
	if (data && !is_traced_fd(&key))
		return 0;
	args.fd = fd;
	args.buf = buf;
	args.addr = addr;
	args.count = count;
	args.syscall = syscall;
	count_full(bpf_map_update_elem(&inflight, &id, &args, BPF_ANY), LT_COUNTER_INFLIGHT_FULL);
	return 0;
}

/* Take back the arguments saved at enter; false if there are none. */
static __always_inline bool take_args(struct lt_args *args)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct lt_args *saved = bpf_map_lookup_elem(&inflight, &id);

	if (!saved)
		return false;
	*args = *saved;
	bpf_map_delete_elem(&inflight, &id);
	return true;
}

/* Fill family, port and address from a user sockaddr; false if it is not
 * AF_INET/AF_INET6 or cannot be read. */
static __always_inline bool read_sockaddr(__u64 uaddr, __u16 *family, __u16 *port, __u8 *addr)
{
	struct lt_sockaddr sa = {};

	if (!uaddr)
		return false;
	/* sockaddr_in is 16 bytes; read no more unless it is sockaddr_in6. */
	if (read_user(&sa, 16, (void *)uaddr))
		return false;
	if (sa.family == AF_INET) {
		__builtin_memset(addr, 0, 16);
		__builtin_memcpy(addr, &sa.v4_or_flowinfo, 4);
	} else if (sa.family == AF_INET6) {
		if (read_user(&sa, sizeof(sa), (void *)uaddr))
			return false;
		__builtin_memcpy(addr, sa.v6, 16);
	} else {
		return false;
	}
	*family = sa.family;
	*port = bpf_ntohs(sa.port);
	return true;
}

/* A per-call sockaddr (sendto's destination, recvfrom's source, msg_name)
 * names the peer of an unconnected datagram socket. */
static __always_inline void use_call_addr(struct lt_event *hdr, __u64 uaddr)
{
	__u16 family = 0, port = 0;
	__u8 addr[16];

	if (read_sockaddr(uaddr, &family, &port, addr) && family == hdr->family) {
		hdr->rport = port;
		__builtin_memcpy(hdr->raddr, addr, 16);
		hdr->flags |= LT_FLAG_ADDR_FROM_CALL;
	}
}

#ifdef LT_WITH_BTF
/* What read_sock_identity() found behind an fd. */
enum lt_fd_kind {
	LT_FD_FREE = 0,  /* no file (or unreadable): the number may become anything */
	LT_FD_OTHER,     /* a file that is not an AF_INET/AF_INET6 stream or datagram socket */
	LT_FD_SOCKET,    /* a traced socket; its identity filled in */
};

/* Read the identity of fd's socket from the kernel. */
static __always_inline enum lt_fd_kind read_sock_identity(int fd, struct lt_conn *conn)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	unsigned int max_fds = BPF_CORE_READ(fdt, max_fds);
	struct file *file = NULL;
	struct socket *sock;
	struct sock *sk;
	short type;

	if (fd < 0 || (unsigned int)fd >= max_fds)
		return LT_FD_FREE;
	bpf_probe_read_kernel(&file, sizeof(file), fds + fd);
	if (!file)
		return LT_FD_FREE;
	if ((BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return LT_FD_OTHER;
	sock = BPF_CORE_READ(file, private_data);
	type = BPF_CORE_READ(sock, type);
	if (type == SOCK_STREAM)
		conn->l4 = IPPROTO_TCP;
	else if (type == SOCK_DGRAM)
		conn->l4 = IPPROTO_UDP;
	else
		return LT_FD_OTHER;
	sk = BPF_CORE_READ(sock, sk);
	conn->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (conn->family == AF_INET) {
		/* Explicit sizes: BPF_CORE_READ_INTO would take sizeof(*laddr), one byte. */
		bpf_core_read(conn->laddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(conn->raddr, 4, &sk->__sk_common.skc_daddr);
	} else if (conn->family == AF_INET6) {
		bpf_core_read(conn->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(conn->raddr, 16, &sk->__sk_common.skc_v6_daddr);
	} else {
		return LT_FD_OTHER;
	}
	conn->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	conn->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	return LT_FD_SOCKET;
}

/* Identity from struct sock, stored (offsets zeroed) under key.  `flags`:
 * BPF_ANY where the socket is new (connect, accept: a fresh identity),
 * BPF_NOEXIST on a first use, where two threads of one process may meet the
 * socket at once and must not wipe the offsets the other already counted. */
static __always_inline struct lt_conn *track_conn(struct lt_conn_key *key, __u64 flags)
{
	struct lt_conn conn = {};

	if (read_sock_identity(key->fd, &conn) != LT_FD_SOCKET)
		return NULL;
	count_full(bpf_map_update_elem(&conns, key, &conn, flags), LT_COUNTER_CONNS_FULL);
	return bpf_map_lookup_elem(&conns, key);
}

static __always_inline struct lt_fd_gen *fd_gen_slot(__u32 pid)
{
	__u32 slot = pid & (FD_GEN_SLOTS - 1);

	return bpf_map_lookup_elem(&fd_gens, &slot);
}

/* This thread group's fd generation.  A group met for the first time (or that
 * lost its slot to another, or whose pid was reused: the fork program frees
 * the child's slot) starts from the clock, beyond any generation an old entry
 * of `not_sockets` can hold (each increment stands for a syscall, which takes
 * longer than the nanosecond it adds).  The slot's two fields are written
 * apart: a group that raced another for its slot may read the other's
 * generation, but that, too, is a clock reading no old entry of its own holds,
 * so the race only makes it forget (the safe way). */
static __always_inline __u64 fd_gen(__u32 pid)
{
	struct lt_fd_gen *slot = fd_gen_slot(pid);
	__u64 fresh;

	if (slot && slot->pid == pid)
		return slot->gen;
	fresh = bpf_ktime_get_ns();
	if (slot) {
		slot->gen = fresh;
		slot->pid = pid;
	}
	return fresh;
}

/* An fd number of this thread group may have been freed: every `not_sockets`
 * entry of the group is stale from now on.  The programs call it both at the
 * syscall's enter (before the kernel frees the number) and at its exit (after:
 * an fd checked while the call ran read the generation before the bump). */
static __always_inline int fds_changed(void)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct lt_fd_gen *slot = fd_gen_slot(pid);

	if (slot && slot->pid == pid)
		__sync_fetch_and_add(&slot->gen, 1);
	return 0;
}

/* MurmurHash3's 64-bit finaliser: a bijection, every input bit moving every
 * output bit. */
static __always_inline __u64 mix64(__u64 x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* The (thread group, fd) pair as one word. */
static __always_inline __u64 fd_id(struct lt_conn_key *key)
{
	return ((__u64)key->pid << 32) | (__u32)key->fd;
}

/* Its slot in `not_sockets`: the top bits of a Fibonacci hash. */
static __always_inline __u32 not_socket_slot(__u64 id)
{
	return (id * 0x9e3779b97f4a7c15ULL) >> (64 - NOT_SOCKET_BITS);
}

/* The tag that says "this fd of this thread group was not a traced socket in
 * generation `gen`".  For one fd, two tags are equal only if their generations
 * are (mix64 is a bijection), so a stale one never matches.  A tag of another
 * fd that shares the slot matches only where mix64 of the two generations
 * differ by exactly the two ids' difference: one chance in 2^64. */
static __always_inline __u64 not_socket_tag(__u64 id, __u64 gen)
{
	return id ^ mix64(gen);
}

/* fd's entry in `conns` if it is a traced socket, else NULL.  Asked at a data
 * syscall's enter (or, where the exit reads the arguments, at its exit), so
 * that a file's read or write saves and copies nothing; the answer is
 * remembered both ways (sockets in `conns`, the rest in `not_sockets` under
 * the generation read before the kernel was asked).  A free number is not
 * remembered: a socket may take it. */
static __always_inline struct lt_conn *traced_conn(struct lt_conn_key *key)
{
	__u64 id = fd_id(key);
	__u32 slot = not_socket_slot(id);
	__u64 *seen = bpf_map_lookup_elem(&not_sockets, &slot);
	/* Read before the kernel is asked: a number freed meanwhile moves it. */
	__u64 tag = not_socket_tag(id, fd_gen(key->pid));
	struct lt_conn *found;
	struct lt_conn conn = {};
	enum lt_fd_kind kind;

	/* Non-sockets first: files and pipes are most of the reads and writes
	 * of a machine, and a remembered one then costs no hash lookup. */
	if (seen && *seen == tag)
		return NULL;
	found = bpf_map_lookup_elem(&conns, key);
	if (found)
		return found;
	kind = read_sock_identity(key->fd, &conn);
	if (kind == LT_FD_SOCKET) {
		count_full(bpf_map_update_elem(&conns, key, &conn, BPF_NOEXIST),
			   LT_COUNTER_CONNS_FULL);
		return bpf_map_lookup_elem(&conns, key);
	}
	if (kind == LT_FD_OTHER && seen)
		*seen = tag;
	return NULL;
}

static __always_inline bool is_traced_fd(struct lt_conn_key *key)
{
	return traced_conn(key) != NULL;
}
#endif

#ifndef LT_WITH_BTF
/* A forked child's fd that its parent had as a socket (still open there, or
 * just closed by it): the child's entry, copied from the parent's. */
static __always_inline struct lt_conn *inherit_conn(struct lt_conn_key *key)
{
	__u32 *parent = bpf_map_lookup_elem(&forks, &key->pid);
	struct lt_conn_key pkey;
	struct lt_conn *pconn;
	struct lt_conn copy;

	if (!parent)
		return NULL;
	pkey.pid = *parent;
	pkey.fd = key->fd;
	pconn = bpf_map_lookup_elem(&conns, &pkey);
	if (!pconn)
		pconn = bpf_map_lookup_elem(&closed, &pkey);
	if (!pconn)
		return NULL;
	/* Through the stack: before 4.15 a map update takes no map value. */
	copy = *pconn;
	count_full(bpf_map_update_elem(&conns, key, &copy, BPF_NOEXIST), LT_COUNTER_CONNS_FULL);
	return bpf_map_lookup_elem(&conns, key);
}
#endif

/* The socket behind fd, or NULL if fd is not a traced socket. */
static __always_inline struct lt_conn *lookup_conn(struct lt_conn_key *key)
{
	struct lt_conn *conn = bpf_map_lookup_elem(&conns, key);

#ifdef LT_WITH_BTF
	if (!conn)
		conn = track_conn(key, BPF_NOEXIST);
#else
	if (!conn)
		conn = inherit_conn(key);
#endif
	return conn;
}

#ifndef LT_WITH_BTF
/* Without BTF only the tracked sockets (and a forked child's inherited ones) are. */
static __always_inline bool is_traced_fd(struct lt_conn_key *key)
{
	return lookup_conn(key) != NULL;
}
#endif

/* Fill the parts of the header shared by every chunk of one syscall.  `task`:
 * the current task as a BTF pointer where the program has one (the programs
 * that read their arguments at the exit), whose name and cgroup are then two
 * plain loads each instead of two helper calls (~150 ns an event); NULL
 * (a constant: the branch compiles away) everywhere else. */
static __always_inline void fill_header(struct lt_event *hdr, struct lt_conn_key *key,
					struct lt_conn *conn, __u8 type, __u8 direction,
					__u16 syscall, struct task_struct *task)
{
	__u64 id = bpf_get_current_pid_tgid();

	hdr->ts_ns = bpf_ktime_get_ns();
#if defined(LT_WITH_BTF) && LT_PROBE_READ_USER
	if (task) {
		hdr->cgroup_id = task->cgroups->dfl_cgrp->kn->id;
		__builtin_memcpy(hdr->comm, task->comm, sizeof(hdr->comm));
	} else {
		hdr->cgroup_id = bpf_get_current_cgroup_id();
		bpf_get_current_comm(hdr->comm, sizeof(hdr->comm));
	}
#elif LT_PROBE_READ_USER
	hdr->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(hdr->comm, sizeof(hdr->comm));
#else
	hdr->cgroup_id = 0;
	bpf_get_current_comm(hdr->comm, sizeof(hdr->comm));
#endif
	hdr->pid = id >> 32;
	hdr->tid = (__u32)id;
	hdr->fd = key->fd;
	hdr->type = type;
	hdr->direction = direction;
	hdr->syscall = syscall;
	hdr->flags = 0;
#ifndef LT_WITH_BTF
	hdr->flags |= LT_FLAG_NO_BTF;
#endif
#if !LT_PROBE_READ_USER
	hdr->flags |= LT_FLAG_PROBE_READ;
#endif
#if !LT_RINGBUF
	hdr->flags |= LT_FLAG_PERFBUF;
#endif
	hdr->family = conn->family;
	hdr->l4 = conn->l4;
	hdr->lport = conn->lport;
	hdr->rport = conn->rport;
	__builtin_memcpy(hdr->laddr, conn->laddr, 16);
	__builtin_memcpy(hdr->raddr, conn->raddr, 16);
	hdr->offset = 0;
	hdr->size = 0;
	hdr->captured = 0;
}

/* How many of a chunk's `size` bytes are captured: up to the payload cap. */
static __always_inline __u64 capped(struct lt_config *cfg, __u32 size)
{
	return size < cfg->payload_cap ? size : cfg->payload_cap;
}

/* Give a chunk of `size` bytes its place in its socket's stream in its
 * direction, and move the stream on past it; false if the port filter drops
 * it (its bytes still count in the offsets). */
static __always_inline bool place_chunk(struct lt_config *cfg, struct lt_event *hdr,
					struct lt_conn *conn, __u32 size)
{
	hdr->size = size;
	hdr->offset = conn->offset[hdr->direction & 1];
	__sync_fetch_and_add(&conn->offset[hdr->direction & 1], size);
	hdr->captured = 0;
	return port_traced(cfg, hdr->lport, hdr->rport);
}

#if LT_RINGBUF
/* The flags of a ring output: wake the reader only once enough is pending
 * (a wakeup per event costs the traced program more than the copy does). */
static __always_inline __u64 wakeup_flags(struct lt_config *cfg)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= cfg->wakeup_bytes
		       ? BPF_RB_FORCE_WAKEUP
		       : BPF_RB_NO_WAKEUP;
}
#endif

#ifdef LT_BATCHES
/* Output a batch (its owner holds `busy`) and empty it; its events are
 * counted here, output or lost. */
static __always_inline void flush_batch(struct lt_config *cfg, struct lt_batch *batch)
{
	__u32 n = batch->count;
	__u64 len = batch->len, flags;
	long err;

	if (!n)
		return;
	flags = wakeup_flags(cfg);
	LT_CLAMP(len, 1, sizeof(batch->data));
	err = bpf_ringbuf_output(&events, batch->data, len, flags);
	count(err ? LT_COUNTER_LOST : LT_COUNTER_EVENTS, n);
	batch->len = 0;
	batch->count = 0;
}

/* An exchange rather than a store: what was written into the batch is seen
 * before it is free, on every architecture (BPF has no release store). */
static __always_inline void release_batch(struct lt_batch *batch)
{
	__sync_lock_test_and_set(&batch->busy, 0);
}

/* This CPU's batch, held (busy) for the caller, with what it held output
 * first where `len` more bytes would not fit; NULL if it is held already (a
 * preempted program on this CPU, or the flush, is filling or emptying it). */
static __always_inline struct lt_batch *hold_batch(struct lt_config *cfg, __u64 len)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct lt_batch *batch = bpf_map_lookup_elem(&batches, &cpu);

	if (!batch || __sync_lock_test_and_set(&batch->busy, 1))
		return NULL;
	if (batch->len + len > cfg->batch_bytes)
		flush_batch(cfg, batch);
	return batch;
}

/* Where the next event goes in a held batch: 8-byte aligned, and below
 * BATCH_BYTES, so that an event of up to BATCH_EVENT_MAX bytes fits after it. */
static __always_inline __u64 batch_end(struct lt_batch *batch)
{
	return batch->len & (BATCH_BYTES - 8);
}

/* An event of `len` bytes stamped `ts_ns` was written at `at` of a held
 * batch: take it in, output the batch if its first event is old, release it. */
static __always_inline void add_to_batch(struct lt_config *cfg, struct lt_batch *batch, __u64 at,
					 __u64 len, __u64 ts_ns)
{
	batch->len = at + ((len + 7) & ~7ULL);
	if (batch->count++ == 0)
		batch->first_ns = ts_ns;
	else if (ts_ns - batch->first_ns > BATCH_AGE_NS)
		flush_batch(cfg, batch);
	release_batch(batch);
}

/* Whether an event of `len` bytes may go into a batch at all. */
static __always_inline bool fits_batch(struct lt_config *cfg, __u64 len)
{
	return len <= BATCH_EVENT_MAX && len <= cfg->batch_bytes;
}

/* Read up to `n` bytes at user address `ubuf` into their place right after
 * `hdr`, an event in a held batch; its `captured` (0 until then) says whether
 * they came. */
static __always_inline void batch_payload(struct lt_event *hdr, __u64 ubuf, __u64 n)
{
	if (n > 0) {
		LT_CLAMP(n, 1, BATCH_EVENT_MAX - sizeof(*hdr));
		if (read_user(hdr + 1, n, (void *)ubuf) == 0)
			hdr->captured = n;
	}
}

/* A chunk of `n` captured bytes at user address `ubuf`, with the header in
 * the scratch event, written straight into this CPU's batch: the header
 * copied, the payload read from the user into its place (no copy through the
 * scratch event, ~40 ns an event).  False if the caller must output it alone:
 * too large for a batch (what the batch holds is output first, so that the
 * chunks of one call, which share a timestamp, reach the ring in their
 * order), or the batch is held. */
static __always_inline bool batch_chunk(struct lt_config *cfg, struct lt_event_buf *ev,
					__u64 ubuf, __u64 n)
{
	__u64 len = sizeof(ev->hdr) + n;
	struct lt_batch *batch = hold_batch(cfg, len);
	struct lt_event *hdr;
	__u64 at;

	if (!batch)
		return false;
	if (!fits_batch(cfg, len)) {
		flush_batch(cfg, batch);
		release_batch(batch);
		return false;
	}
	at = batch_end(batch);
	hdr = (struct lt_event *)(batch->data + at);
	__builtin_memcpy(hdr, &ev->hdr, sizeof(*hdr)); /* captured: 0 (place_chunk) */
	batch_payload(hdr, ubuf, n);
	if (hdr->tid != (__u32)bpf_get_current_pid_tgid()) {
		/* The scratch slot was another program's by then (see output()). */
		count(LT_COUNTER_LOST, 1);
		release_batch(batch);
		return true;
	}
	add_to_batch(cfg, batch, at, sizeof(*hdr) + hdr->captured, hdr->ts_ns);
	return true;
}

/* A plain call's one chunk (read, write, sendto, recvfrom) assembled where it
 * goes, in this CPU's batch: the header filled there, the payload read into
 * place.  No scratch event, no copy of the header, and no check that another
 * program took the scratch slot meanwhile (~20 ns an event).  False if the
 * caller must take the scratch path: no batches, a chunk too large for one
 * (that path outputs what the batch holds first), or the batch held. */
static __always_inline bool batch_plain(struct lt_config *cfg, struct lt_conn_key *key,
					struct lt_conn *conn, struct lt_args *args, __u32 size,
					__u8 direction, struct task_struct *task)
{
	__u64 n = capped(cfg, size);
	__u64 len = sizeof(struct lt_event) + n;
	struct lt_batch *batch;
	struct lt_event *hdr;
	__u64 at;

	if (!fits_batch(cfg, len))
		return false;
	batch = hold_batch(cfg, len);
	if (!batch)
		return false;
	at = batch_end(batch);
	hdr = (struct lt_event *)(batch->data + at);
	fill_header(hdr, key, conn, LT_EVENT_DATA, direction, args->syscall, task);
	if (direction == LT_EGRESS || args->addr)
		use_call_addr(hdr, args->addr);
	if (!place_chunk(cfg, hdr, conn, size)) {
		release_batch(batch);
		return true;
	}
	batch_payload(hdr, args->buf, n);
	add_to_batch(cfg, batch, at, sizeof(*hdr) + hdr->captured, hdr->ts_ns);
	return true;
}
#endif

/* Output the event in the scratch buffer, alone: its header and `captured`
 * bytes.  The size is read back from the header here, after every other
 * helper call, so that nothing holds it across a call (see LT_CLAMP). */
static __always_inline void output(void *ctx, struct lt_config *cfg, struct lt_event_buf *ev)
{
	long err;
	__u64 len;

	if (ev->hdr.tid != (__u32)bpf_get_current_pid_tgid()) {
		/* Another program took this slot meanwhile (more preempted
		 * programs on this CPU than slots): the event is lost, not sent
		 * with another's contents. */
		count(LT_COUNTER_LOST, 1);
		return;
	}
#if LT_RINGBUF
	__u64 flags = wakeup_flags(cfg);

	len = sizeof(ev->hdr) + ev->hdr.captured;
	LT_CLAMP(len, sizeof(ev->hdr), sizeof(*ev));
	err = bpf_ringbuf_output(&events, ev, len, flags);
#else
	len = sizeof(ev->hdr) + ev->hdr.captured;
	LT_CLAMP(len, sizeof(ev->hdr), sizeof(*ev));
	err = bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, ev, len);
#endif
	count(err ? LT_COUNTER_LOST : LT_COUNTER_EVENTS, 1);
}

/* Output one chunk of `size` bytes at user address `ubuf`; `batch`: through
 * this CPU's batch where it can (a constant: false compiles the batch away). */
static __always_inline void emit_chunk(void *ctx, struct lt_config *cfg, struct lt_event_buf *ev,
				       struct lt_conn *conn, __u64 ubuf, __u32 size, bool batch)
{
	__u64 n = capped(cfg, size);

	if (!place_chunk(cfg, &ev->hdr, conn, size))
		return;
#ifdef LT_BATCHES
	if (batch && cfg->batch_bytes && batch_chunk(cfg, ev, ubuf, n))
		return;
#endif
	if (n > 0) {
		LT_CLAMP(n, 1, LT_MAX_PAYLOAD);
		if (read_user(ev->data, n, (void *)ubuf) == 0)
			ev->hdr.captured = n;
	}
	output(ctx, cfg, ev);
}

/* Output the chunks of an iovec array that together moved `left` bytes,
 * following at most `max_iov` iovecs: MAX_IOV for a call's own array,
 * MAX_MMSG_IOV for each message of an mmsg call (fewer, since the copy is
 * repeated per message).  Every caller passes a constant: once inlined, the
 * loop has a constant trip count and is fully unrolled (4.14 has no bounded
 * loops).  A variable bound fails the build rather than leaving a loop:
 * clang reports the `#pragma unroll` it cannot honour, and -Werror stops it. */
static __always_inline void emit_iov(void *ctx, struct lt_config *cfg, struct lt_event_buf *ev,
				     struct lt_conn *conn, __u64 uiov, __u64 iovcnt, __u64 left,
				     int max_iov, bool batch)
{
	struct lt_iovec iov;

#pragma unroll
	for (int i = 0; i < max_iov; i++) {
		if (i >= iovcnt || left == 0)
			break;
		if (read_user(&iov, sizeof(iov), (void *)(uiov + i * sizeof(iov))))
			break;
		if (iov.iov_len == 0)
			continue;
		__u64 chunk = iov.iov_len < left ? iov.iov_len : left;
		emit_chunk(ctx, cfg, ev, conn, iov.iov_base, chunk, batch);
		left -= chunk;
	}
	/* Bytes beyond the iovecs followed: keep the offset true, so that user
	 * space sees a gap rather than glued streams. */
	if (left)
		__sync_fetch_and_add(&conn->offset[ev->hdr.direction & 1], left);
}

/* How the exit program finds the bytes. */
enum lt_layout {
	LT_PLAIN, /* (buf, count) */
	LT_IOV,   /* (iovec *, iovcnt) */
	LT_MSG,   /* (user_msghdr *) */
	LT_MMSG,  /* (mmsghdr *, vlen); the return value counts messages */
};

/* Output the bytes a data syscall moved on a traced socket. */
static __always_inline int emit_data(void *ctx, struct lt_config *cfg, struct lt_conn_key *key,
				     struct lt_conn *conn, struct lt_args *args, long ret,
				     enum lt_layout layout, __u8 direction,
				     struct task_struct *task)
{
	/* The programs that read their arguments at the exit (5.15+: the only
	 * ones given a task) gather their events in batches. */
	bool batch = task != NULL;
	struct lt_event_buf *ev;

#ifdef LT_BATCHES
	if (batch && layout == LT_PLAIN &&
	    batch_plain(cfg, key, conn, args, ret, direction, task))
		return 0;
#endif
	ev = scratch_event();
	if (!ev)
		return 0;
	fill_header(&ev->hdr, key, conn, LT_EVENT_DATA, direction, args->syscall, task);

	if (layout == LT_PLAIN) {
		if (direction == LT_EGRESS || args->addr)
			use_call_addr(&ev->hdr, args->addr);
		emit_chunk(ctx, cfg, ev, conn, args->buf, ret, batch);
	} else if (layout == LT_IOV) {
		emit_iov(ctx, cfg, ev, conn, args->buf, args->count, ret, MAX_IOV, batch);
	} else if (layout == LT_MSG) {
		struct lt_user_msghdr msg;

		if (read_user(&msg, sizeof(msg), (void *)args->buf))
			return 0;
		use_call_addr(&ev->hdr, msg.msg_name);
		emit_iov(ctx, cfg, ev, conn, msg.msg_iov, msg.msg_iovlen, ret, MAX_IOV, batch);
	} else {
		struct lt_mmsghdr mmsg;

#pragma unroll
		for (int i = 0; i < MAX_MMSG; i++) {
			if (i >= ret || i >= args->count)
				break;
			if (read_user(&mmsg, sizeof(mmsg),
				      (void *)(args->buf + i * sizeof(struct lt_mmsghdr))))
				break;
			ev->hdr.rport = conn->rport;
			__builtin_memcpy(ev->hdr.raddr, conn->raddr, 16);
			use_call_addr(&ev->hdr, mmsg.msg_hdr.msg_name);
			emit_iov(ctx, cfg, ev, conn, mmsg.msg_hdr.msg_iov,
				 mmsg.msg_hdr.msg_iovlen, mmsg.msg_len, MAX_MMSG_IOV, batch);
		}
	}
	return 0;
}

/* A data syscall's exit, with the arguments its enter program saved. */
static __always_inline int on_data_exit(void *ctx, long ret, enum lt_layout layout,
					__u8 direction)
{
	struct lt_config *cfg = get_config();
	struct lt_conn_key key;
	struct lt_conn *conn;
	struct lt_args args;

	if (!take_args(&args) || ret <= 0 || !cfg)
		return 0;
	key.pid = bpf_get_current_pid_tgid() >> 32;
	key.fd = args.fd;
	conn = lookup_conn(&key);
	if (!conn)
		return 0;
	return emit_data(ctx, cfg, &key, conn, &args, ret, layout, direction, NULL);
}

#ifdef LT_WITH_BTF
/* The rest of a data syscall's exit that read its own arguments (the
 * registers they were passed in: fd, buf, count/vlen and the sockaddr). */
static __always_inline int on_data_exit_args(void *ctx, struct lt_config *cfg,
					     struct lt_conn_key *key, __u64 fd, __u64 buf,
					     __u64 count, __u64 addr, long ret,
					     enum lt_layout layout, __u8 direction,
					     __u16 syscall, struct task_struct *task)
{
	struct lt_args args = {};
	struct lt_conn *conn;

	key->fd = fd;
	conn = traced_conn(key);
	if (!conn)
		return 0;
	args.fd = key->fd;
	args.buf = buf;
	args.addr = addr;
	args.count = count;
	args.syscall = syscall;
	return emit_data(ctx, cfg, key, conn, &args, ret, layout, direction, task);
}
#endif

#if defined(LT_WITH_BTF) && LT_PROBE_READ_USER
/* A data syscall's exit that reads the arguments itself (5.15+: the task's
 * saved user registers through bpf_task_pt_regs), so that no enter program
 * runs and nothing is saved, looked up and deleted per call: the tracer loads
 * these instead of the enter/exit pairs where the kernel has the helper.
 * `addr_reg`/`count_reg`: whether the call has a sockaddr (sendto,
 * recvfrom: the fifth argument) or a count (the vector calls: the third). */
static __always_inline int on_data_exit_regs(void *ctx, long ret, enum lt_layout layout,
					     __u8 direction, __u16 syscall, bool addr_reg,
					     bool count_reg)
{
	struct lt_config *cfg;
	struct lt_conn_key key;
	struct task_struct *task;
	struct pt_regs *regs;

	if (ret <= 0)
		return 0;
	cfg = get_config();
	key.pid = bpf_get_current_pid_tgid() >> 32;
	if (!cfg || !pid_traced(cfg, key.pid))
		return 0;
	task = bpf_get_current_task_btf();
	regs = (struct pt_regs *)bpf_task_pt_regs(task);
	return on_data_exit_args(ctx, cfg, &key, regs->di, regs->si, count_reg ? regs->dx : 0,
				 addr_reg ? regs->r8 : 0, ret, layout, direction, syscall, task);
}
#endif

#ifdef LT_WITH_BTF
/* x86-64's user registers as the syscall entry saved them, from r8 to ss (the
 * ptrace ABI, so a fixed layout): the arguments, the syscall's number and the
 * user segments. */
struct lt_saved_regs {
	__u64 r8, ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};
#define LT_PT_REGS_SIZE 168  /* sizeof(struct pt_regs) */
#define LT_PT_REGS_R8 72     /* offsetof(struct pt_regs, r8) */
#define LT_USER_CS 0x33      /* __USER_CS: a 64-bit task's */
#define LT_USER_SS 0x2b      /* __USER_DS */

/* Where bpf_task_pt_regs is missing (before 5.15): the registers saved at the
 * top of the current task's kernel stack.  The stack is 16 KiB, or 32 KiB with
 * KASAN, and kernels built with FRED (6.9+) keep 16 bytes free above the
 * registers; the right top is the one whose registers carry this syscall's
 * number and the user segments (their low 16 bits: FRED uses the rest), tried
 * in that order (before 5.15 the first one, as a rule); false if none does. */
static __always_inline bool stack_regs(int nr, struct lt_saved_regs *regs)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 stack = (__u64)BPF_CORE_READ(task, stack);

	if (!stack)
		return false;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u64 top = stack + ((16 << 10) << (i & 1)) - 16 * (i >> 1);

		if (bpf_probe_read_kernel(regs, sizeof(*regs),
					  (void *)(top - LT_PT_REGS_SIZE + LT_PT_REGS_R8)))
			continue;
		if ((int)regs->orig_ax == nr && (__u16)regs->cs == LT_USER_CS &&
		    (__u16)regs->ss == LT_USER_SS)
			return true;
	}
	return false;
}

/* on_data_exit_regs() with the registers stack_regs() finds: the BTF objects'
 * exit-only programs for kernels without bpf_task_pt_regs (5.2-5.14).  A call
 * whose registers are not found counts as one whose arguments found inflight
 * full: its bytes are unseen, and said to be. */
static __always_inline int on_data_exit_stack(void *ctx, int nr, long ret,
					      enum lt_layout layout, __u8 direction,
					      __u16 syscall, bool addr_reg, bool count_reg)
{
	struct lt_config *cfg;
	struct lt_conn_key key;
	struct lt_saved_regs regs;

	if (ret <= 0)
		return 0;
	cfg = get_config();
	key.pid = bpf_get_current_pid_tgid() >> 32;
	if (!cfg || !pid_traced(cfg, key.pid))
		return 0;
	if (!stack_regs(nr, &regs)) {
		count(LT_COUNTER_INFLIGHT_FULL, 1);
		return 0;
	}
	return on_data_exit_args(ctx, cfg, &key, regs.di, regs.si, count_reg ? regs.dx : 0,
				 addr_reg ? regs.r8 : 0, ret, layout, direction, syscall, NULL);
}
#endif

/* A connection event (connect, accept, close): header only. */
static __always_inline void emit_conn_event(void *ctx, struct lt_config *cfg,
					    struct lt_conn_key *key, struct lt_conn *conn,
					    __u8 type, __u16 syscall)
{
	struct lt_event_buf *ev = scratch_event();

	if (!ev || !port_traced(cfg, conn->lport, conn->rport))
		return;
	fill_header(&ev->hdr, key, conn, type, LT_EGRESS, syscall, NULL);
	ev->hdr.offset = conn->offset[LT_EGRESS];
	output(ctx, cfg, ev);
}

/* The Go TLS uprobes and the process watching tracepoints share this
 * object's maps, identity code and event buffer (and close() below resets
 * their plaintext offsets). */
#include "go_tls.bpf.c"

/* ---- read/write family ------------------------------------------------ */

#if defined(LT_WITH_BTF) && LT_PROBE_READ_USER
#define DATA_EXIT_REGS(name, SYS, layout, direction, addr_arg, count_arg)             \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                    \
	int lt_exitr_##name(struct lt_sys_exit *ctx)                                  \
	{                                                                             \
		return on_data_exit_regs(ctx, ctx->ret, layout, direction, SYS,       \
					 addr_arg != 0, count_arg != 0);              \
	}
#else
#define DATA_EXIT_REGS(name, SYS, layout, direction, addr_arg, count_arg)
#endif

#ifdef LT_WITH_BTF
#define DATA_EXIT_STACK(name, SYS, layout, direction, addr_arg, count_arg)            \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                    \
	int lt_exitk_##name(struct lt_sys_exit *ctx)                                  \
	{                                                                             \
		/* the tracepoint's __syscall_nr is an int */                         \
		return on_data_exit_stack(ctx, (int)ctx->syscall_nr, ctx->ret, layout, \
					  direction, SYS, addr_arg != 0, count_arg != 0);     \
	}
#else
#define DATA_EXIT_STACK(name, SYS, layout, direction, addr_arg, count_arg)
#endif

/* addr_arg, count_arg: which argument is the sockaddr (sendto, recvfrom: the
 * fifth) or the count (the vector calls: the third); 0 where there is none. */
#define DATA_PROGRAMS(name, SYS, layout, direction, addr_arg, count_arg)              \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                   \
	int lt_enter_##name(struct lt_sys_enter *ctx)                            \
	{                                                                             \
		return save_args(ctx->args[0], ctx->args[1],                          \
				 addr_arg ? ctx->args[addr_arg] : 0,                          \
				 count_arg ? ctx->args[count_arg] : 0, SYS, true);            \
	}                                                                             \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                    \
	int lt_exit_##name(struct lt_sys_exit *ctx)                              \
	{                                                                             \
		return on_data_exit(ctx, ctx->ret, layout, direction);                \
	}                                                                             \
	DATA_EXIT_REGS(name, SYS, layout, direction, addr_arg, count_arg)            \
	DATA_EXIT_STACK(name, SYS, layout, direction, addr_arg, count_arg)

DATA_PROGRAMS(read, LT_SYS_READ, LT_PLAIN, LT_INGRESS, 0, 0)
DATA_PROGRAMS(write, LT_SYS_WRITE, LT_PLAIN, LT_EGRESS, 0, 0)
DATA_PROGRAMS(readv, LT_SYS_READV, LT_IOV, LT_INGRESS, 0, 2)
DATA_PROGRAMS(writev, LT_SYS_WRITEV, LT_IOV, LT_EGRESS, 0, 2)
DATA_PROGRAMS(sendto, LT_SYS_SENDTO, LT_PLAIN, LT_EGRESS, 4, 0)
DATA_PROGRAMS(recvfrom, LT_SYS_RECVFROM, LT_PLAIN, LT_INGRESS, 4, 0)
DATA_PROGRAMS(sendmsg, LT_SYS_SENDMSG, LT_MSG, LT_EGRESS, 0, 0)
DATA_PROGRAMS(recvmsg, LT_SYS_RECVMSG, LT_MSG, LT_INGRESS, 0, 0)
DATA_PROGRAMS(sendmmsg, LT_SYS_SENDMMSG, LT_MMSG, LT_EGRESS, 0, 2)
DATA_PROGRAMS(recvmmsg, LT_SYS_RECVMMSG, LT_MMSG, LT_INGRESS, 0, 2)

#ifdef LT_BATCHES
/* Run by user space (BPF_PROG_RUN) before it reads the ring, and after it
 * detached the programs: every CPU's batch is output, so that an event stamped
 * before that read is in the ring (or in a batch held right now, which the
 * result says).  The tracer leaves it unloaded where it loads no lt_exitr_*. */
SEC("syscall")
int lt_flush_batches(struct lt_flush_result *result)
{
	struct lt_config *cfg = get_config();

	if (!cfg)
		return 0;
	for (__u64 i = 0; i < BATCH_MAX_CPUS; i++) {
		/* The key apart from the counter: a counter whose address is
		 * taken lives on the stack, where the verifier loses its value
		 * and takes the loop for an infinite one. */
		__u32 cpu = i;
		struct lt_batch *batch = bpf_map_lookup_elem(&batches, &cpu);

		if (!batch)
			break;
		if (!batch->count)
			continue;
		if (__sync_lock_test_and_set(&batch->busy, 1)) {
			result->held = 1; /* a store, not a count: the loop's states stay alike */
			continue;
		}
		flush_batch(cfg, batch);
		release_batch(batch);
	}
	return 0;
}
#endif

/* ---- connection lifecycle --------------------------------------------- */

SEC("tracepoint/syscalls/sys_enter_connect")
int lt_enter_connect(struct lt_sys_enter *ctx)
{
	return save_args(ctx->args[0], 0, ctx->args[1], 0, LT_SYS_CONNECT, false);
}

SEC("tracepoint/syscalls/sys_exit_connect")
int lt_exit_connect(struct lt_sys_exit *ctx)
{
	struct lt_config *cfg = get_config();
	struct lt_conn_key key;
	struct lt_conn *conn;
	struct lt_args args;

	if (!take_args(&args) || !cfg || (ctx->ret != 0 && ctx->ret != -EINPROGRESS))
		return 0;
	key.pid = bpf_get_current_pid_tgid() >> 32;
	key.fd = args.fd;
#ifdef LT_WITH_BTF
	/* A (re)connected socket has a new peer: read it afresh. */
	conn = track_conn(&key, BPF_ANY);
	if (!conn)
		return 0;
#else
	conn = bpf_map_lookup_elem(&conns, &key);
	if (!conn) {
		/* Created before the tracer started and not seeded from /proc. */
		struct lt_conn fresh = {};

		count_full(bpf_map_update_elem(&conns, &key, &fresh, BPF_NOEXIST),
			   LT_COUNTER_CONNS_FULL);
		conn = bpf_map_lookup_elem(&conns, &key);
		if (!conn)
			return 0;
	}
	read_sockaddr(args.addr, &conn->family, &conn->rport, conn->raddr);
#endif
	emit_conn_event(ctx, cfg, &key, conn, LT_EVENT_CONNECT, LT_SYS_CONNECT);
	return 0;
}

#define ACCEPT_PROGRAMS(name, SYS)                                                    \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                   \
	int lt_enter_##name(struct lt_sys_enter *ctx)                            \
	{                                                                             \
		return save_args(ctx->args[0], 0, ctx->args[1], 0, SYS, false);       \
	}                                                                             \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                    \
	int lt_exit_##name(struct lt_sys_exit *ctx)                              \
	{                                                                             \
		return on_accept_exit(ctx, SYS);                                      \
	}

static __always_inline int on_accept_exit(struct lt_sys_exit *ctx, __u16 syscall)
{
	struct lt_config *cfg = get_config();
	struct lt_conn_key key;
	struct lt_conn *conn;
	struct lt_args args;

	if (!take_args(&args) || !cfg || ctx->ret < 0)
		return 0;
	key.pid = bpf_get_current_pid_tgid() >> 32;
	key.fd = ctx->ret;
#ifdef LT_WITH_BTF
	conn = track_conn(&key, BPF_ANY);
	if (!conn)
		return 0;
#else
	{
		/* The new socket inherits family, transport and local port
		 * from the listener; the peer comes from accept's sockaddr. */
		struct lt_conn_key lkey = { .pid = key.pid, .fd = args.fd };
		struct lt_conn *listener = bpf_map_lookup_elem(&conns, &lkey);
		struct lt_conn fresh = {};

		if (listener) {
			fresh.family = listener->family;
			fresh.l4 = listener->l4;
			fresh.lport = listener->lport;
			__builtin_memcpy(fresh.laddr, listener->laddr, 16);
		}
		read_sockaddr(args.addr, &fresh.family, &fresh.rport, fresh.raddr);
		count_full(bpf_map_update_elem(&conns, &key, &fresh, BPF_ANY), LT_COUNTER_CONNS_FULL);
		conn = bpf_map_lookup_elem(&conns, &key);
		if (!conn)
			return 0;
	}
#endif
	emit_conn_event(ctx, cfg, &key, conn, LT_EVENT_ACCEPT, syscall);
	return 0;
}

ACCEPT_PROGRAMS(accept, LT_SYS_ACCEPT)
ACCEPT_PROGRAMS(accept4, LT_SYS_ACCEPT4)

SEC("tracepoint/syscalls/sys_enter_close")
int lt_enter_close(struct lt_sys_enter *ctx)
{
	struct lt_config *cfg = get_config();
	struct lt_conn_key key;
	struct lt_conn *conn;

	if (!cfg)
		return 0;
	key.pid = bpf_get_current_pid_tgid() >> 32;
	key.fd = ctx->args[0];
#ifdef LT_WITH_BTF
	fds_changed();
#endif
	bpf_map_delete_elem(&tls_conns, &key); /* plaintext offsets start anew with the fd */
	conn = bpf_map_lookup_elem(&conns, &key);
	if (!conn)
		return 0;
	if (pid_traced(cfg, key.pid))
		emit_conn_event(ctx, cfg, &key, conn, LT_EVENT_CLOSE, LT_SYS_CLOSE);
#ifndef LT_WITH_BTF
	{
		/* For a forked child; through the stack, as 4.14 demands. */
		struct lt_conn copy = *conn;

		bpf_map_update_elem(&closed, &key, &copy, BPF_ANY);
	}
#endif
	bpf_map_delete_elem(&conns, &key);
	return 0;
}

SEC("tracepoint/sched/sched_process_fork")
int lt_sched_process_fork(void *ctx)
{
	struct lt_config *cfg = get_config();
	__u32 child = 0;

	if (!cfg)
		return 0;
	/* The offset differs between kernels and comes from the event's format;
	 * a read through the pointer, not a ctx access, which the attach would
	 * refuse beyond the record's size on the kernels with the short layout. */
	if (bpf_probe_read(&child, sizeof(child), ctx + (cfg->fork_child_pid_offset & 0xff)))
		return 0;
#ifdef LT_WITH_BTF
	/* A reused pid starts a fresh fd generation: the old process's
	 * `not_sockets` entries are not the child's (child is a thread id too,
	 * where it is a new thread; no thread group holds that slot then). */
	struct lt_fd_gen *slot = fd_gen_slot(child);

	if (slot && slot->pid == child)
		slot->pid = 0;
#else
	/* Runs in the parent: its thread group is the one sockets are keyed by. */
	__u32 parent = bpf_get_current_pid_tgid() >> 32;

	bpf_map_update_elem(&forks, &child, &parent, BPF_ANY);
#endif
	return 0;
}

#ifdef LT_WITH_BTF
/* ---- fd numbers freed (the memory of non-sockets) --------------------- */

SEC("tracepoint/syscalls/sys_exit_close")
int lt_exit_close(struct lt_sys_exit *ctx)
{
	return fds_changed();
}

/* close_range (5.9+), dup2/dup3 over an open fd, and exec (close-on-exec fds). */
#define FD_PROGRAMS(name)                                                             \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                   \
	int lt_enter_##name(struct lt_sys_enter *ctx)                                 \
	{                                                                             \
		return fds_changed();                                                 \
	}                                                                             \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                    \
	int lt_exit_##name(struct lt_sys_exit *ctx)                                   \
	{                                                                             \
		return fds_changed();                                                 \
	}

FD_PROGRAMS(close_range)
FD_PROGRAMS(dup2)
FD_PROGRAMS(dup3)
FD_PROGRAMS(execve)
FD_PROGRAMS(execveat)
#endif

#ifndef LT_WITH_BTF
/* ---- socket tracking without BTF ------------------------------------- */

SEC("tracepoint/syscalls/sys_enter_socket")
int lt_enter_socket(struct lt_sys_enter *ctx)
{
	/* family in count, type in addr (see struct lt_args) */
	return save_args(-1, 0, ctx->args[1], ctx->args[0], 0, false);
}

SEC("tracepoint/syscalls/sys_exit_socket")
int lt_exit_socket(struct lt_sys_exit *ctx)
{
	struct lt_conn_key key;
	struct lt_conn conn = {};
	struct lt_args args;
	__u64 type;

	if (!take_args(&args) || ctx->ret < 0)
		return 0;
	if (args.count != AF_INET && args.count != AF_INET6)
		return 0;
	type = args.addr & SOCK_TYPE_MASK;
	if (type == SOCK_STREAM)
		conn.l4 = IPPROTO_TCP;
	else if (type == SOCK_DGRAM)
		conn.l4 = IPPROTO_UDP;
	else
		return 0;
	conn.family = args.count;
	key.pid = bpf_get_current_pid_tgid() >> 32;
	key.fd = ctx->ret;
	count_full(bpf_map_update_elem(&conns, &key, &conn, BPF_ANY), LT_COUNTER_CONNS_FULL);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_bind")
int lt_enter_bind(struct lt_sys_enter *ctx)
{
	return save_args(ctx->args[0], 0, ctx->args[1], 0, 0, false);
}

SEC("tracepoint/syscalls/sys_exit_bind")
int lt_exit_bind(struct lt_sys_exit *ctx)
{
	struct lt_conn_key key;
	struct lt_conn *conn;
	struct lt_args args;

	if (!take_args(&args) || ctx->ret != 0)
		return 0;
	key.pid = bpf_get_current_pid_tgid() >> 32;
	key.fd = args.fd;
	conn = bpf_map_lookup_elem(&conns, &key);
	if (conn)
		read_sockaddr(args.addr, &conn->family, &conn->lport, conn->laddr);
	return 0;
}
#endif

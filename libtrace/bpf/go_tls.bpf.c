/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Go TLS plaintext capture: uprobes on crypto/tls.(*Conn).Read and Write,
 * and the exec/exit tracepoints that let user space follow Go programs.
 *
 * This file is part of the socket_trace object (socket_trace.bpf.c includes
 * it at its end) rather than an object of its own: the plaintext events share
 * the ring buffer, counters, configuration, pid/port filters and the socket
 * identity code with the syscall events, so they reach user space in one
 * ordered stream and in one format, flagged LT_FLAG_TLS.  The programs load
 * with every variant; user space attaches them per process (uprobes with a
 * pid) only to Go binaries that its inspector understood.
 *
 * Theory of operation.  Reads: an entry uprobe on (*Conn).Read reads the
 * receiver *tls.Conn and the buffer, follows the conn to the socket fd with
 * the offsets that user space stored for this process in `go_procs`, and
 * saves (buffer, fd) in `go_inflight`.  Go stacks move, so the return is not
 * probed with a uretprobe (it would rewrite a return address on a stack the
 * runtime may copy); user space puts a plain uprobe on every RET instruction
 * instead, and that program takes the saved arguments back, reads the result
 * n and copies n bytes (up to the payload cap) from the buffer.  Read blocks
 * and its goroutine may resume on another thread, so in-flight calls are
 * keyed per goroutine, not per thread: by the g pointer (R14) under the
 * register ABI; under the stack ABI by the *tls.Conn itself, which is as
 * unique because Read holds the conn's input lock for the whole call.
 * Under the register ABI on x86-64 the RETs are not probed at all where
 * user space found Read's one call of runtime.memmove (the inlined
 * bytes.Reader.Read copying the plaintext into the caller's buffer): a
 * probe on that call takes the saved arguments back and copies the bytes
 * from the source, whose count is the call's third argument.  A call is an
 * instruction x86 uprobes emulate; a RET is single-stepped, a second trap
 * that costs ten times the first on the machines measured.
 *
 * Writes are taken at the entry of (*Conn).writeRecordLocked, for records of
 * application data only: it runs with the conn's output lock held, so the
 * order of its calls is the order of the bytes on the wire.  At the returns
 * of (*Conn).Write it would not be: two goroutines writing one conn (HTTP/2
 * does) may return in the other order than they held the lock.
 *
 * Plaintext offsets are counted per socket and direction in `tls_conns`,
 * apart from the socket's ciphertext offsets in `conns`.
 */

/* struct pt_regs of x86-64 as the kernel hands it to uprobes (the ptrace
 * UAPI layout, fixed), so no BTF is needed to read registers. */
struct lt_pt_regs {
	__u64 r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	__u64 ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

/* Key of a Go TLS call in flight. */
struct lt_go_key {
	__u64 goroutine; /* g pointer (register ABI) or *tls.Conn (stack ABI) */
	__u32 pid;
	__u32 direction; /* enum lt_direction: Read is ingress, Write egress */
};

struct lt_go_args {
	__u64 buf;
	__s32 fd;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_GO_PROCS);
	__type(key, __u32);
	__type(value, struct lt_go_proc);
} go_procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_GO_INFLIGHT);
	__type(key, struct lt_go_key);
	__type(value, struct lt_go_args);
} go_inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_CONNS);
	__type(key, struct lt_conn_key);
	__type(value, struct lt_conn);
} tls_conns SEC(".maps");

/* The in-flight key of the current call; false if it cannot be read. */
static __always_inline bool go_key(struct lt_pt_regs *regs, struct lt_go_proc *proc,
				   __u32 pid, __u32 direction, struct lt_go_key *key)
{
	key->pid = pid;
	key->direction = direction;
	if (proc->abi == LT_GO_ABI_REGISTER) {
		key->goroutine = regs->r14;
		return true;
	}
	/* Stack ABI: SP points at the return address, the receiver follows. */
	return read_user(&key->goroutine, sizeof(key->goroutine), (void *)(regs->sp + 8)) == 0;
}

/* Follow *tls.Conn to the socket fd: conn.conn (a net.Conn interface) ->
 * its data word (*net.TCPConn) -> the *netFD -> poll.FD.Sysfd. */
static __always_inline __s64 go_conn_fd(struct lt_go_proc *proc, __u64 conn)
{
	__u64 data = 0, netfd = 0;
	__s64 fd = -1;

	if (read_user(&data, sizeof(data), (void *)(conn + proc->conn_data)) || !data)
		return -1;
	if (read_user(&netfd, sizeof(netfd), (void *)(data + proc->tcpconn_netfd)) || !netfd)
		return -1;
	if (read_user(&fd, sizeof(fd), (void *)(netfd + proc->netfd_sysfd)))
		return -1;
	return fd;
}

/* An argument word of a stack-ABI call: SP points at the return address. */
static __always_inline bool go_stack_arg(struct lt_pt_regs *regs, int index, __u64 *value)
{
	return read_user(value, sizeof(*value), (void *)(regs->sp + 8 * (index + 1))) == 0;
}

static __always_inline int go_tls_read_enter(struct lt_pt_regs *regs)
{
	struct lt_config *cfg = get_config();
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct lt_go_args args = {};
	struct lt_go_proc *proc;
	struct lt_go_key key;
	__u64 conn;
	__s64 fd;

	if (!cfg || !pid_traced(cfg, pid))
		return 0;
	proc = bpf_map_lookup_elem(&go_procs, &pid);
	if (!proc || !go_key(regs, proc, pid, LT_INGRESS, &key))
		return 0;
	if (proc->abi == LT_GO_ABI_REGISTER) {
		conn = regs->ax;
		args.buf = regs->bx;
	} else {
		conn = key.goroutine;
		if (!go_stack_arg(regs, 1, &args.buf))
			return 0;
	}
	fd = go_conn_fd(proc, conn);
	if (fd < 0) {
		/* No socket: an entry this goroutine left earlier (a Read that
		 * returned an error before its copy) must not take this call's bytes. */
		bpf_map_delete_elem(&go_inflight, &key);
		return 0;
	}
	args.fd = fd;
	count_full(bpf_map_update_elem(&go_inflight, &key, &args, BPF_ANY),
		   LT_COUNTER_GO_INFLIGHT_FULL);
	return 0;
}

/* The plaintext identity and offsets of fd, made on first use from the
 * socket's identity (without BTF possibly empty: user space completes it). */
static __always_inline struct lt_conn *tls_conn(struct lt_conn_key *key)
{
	struct lt_conn *tconn = bpf_map_lookup_elem(&tls_conns, key);
	struct lt_conn fresh = {};
	struct lt_conn *conn;

	if (tconn)
		return tconn;
	conn = lookup_conn(key);
#ifdef LT_WITH_BTF
	if (!conn)
		return NULL; /* not an inet socket */
#endif
	if (conn) {
		fresh.family = conn->family;
		fresh.l4 = conn->l4;
		fresh.lport = conn->lport;
		fresh.rport = conn->rport;
		__builtin_memcpy(fresh.laddr, conn->laddr, 16);
		__builtin_memcpy(fresh.raddr, conn->raddr, 16);
	}
	/* NOEXIST: a Go server's reader and writer goroutines meet a new
	 * connection at once (HTTP/2 writes its SETTINGS while it reads the
	 * preface); whichever creates the entry, both then count in it.  With
	 * BPF_ANY the later one replaced it, and the offsets already counted
	 * there were lost: duplicate offsets, then a gap. */
	bpf_map_update_elem(&tls_conns, key, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&tls_conns, key);
}

/* Output `n` plaintext bytes at `buf` of the socket `fd` of this process. */
static __always_inline void go_tls_emit(struct lt_pt_regs *regs, struct lt_config *cfg, __u32 pid,
					__s32 fd, __u32 direction, __u16 syscall, __u64 buf,
					__s64 n)
{
	struct lt_conn_key conn_key = {.pid = pid, .fd = fd};
	struct lt_event_buf *ev;
	struct lt_conn *tconn;

	if (n <= 0)
		return;
	tconn = tls_conn(&conn_key);
	if (!tconn)
		return;
	ev = scratch_event();
	if (!ev)
		return;
	fill_header(&ev->hdr, &conn_key, tconn, LT_EVENT_DATA, direction, syscall, NULL);
	ev->hdr.flags |= LT_FLAG_TLS;
	emit_chunk(regs, cfg, ev, tconn, buf, n, false);
}

/* Take back what Read's entry saved for this goroutine (and forget it). */
static __always_inline bool go_take_read(struct lt_pt_regs *regs, struct lt_go_proc *proc,
					 __u32 pid, struct lt_go_args *args)
{
	struct lt_go_args *saved;
	struct lt_go_key key;

	if (!go_key(regs, proc, pid, LT_INGRESS, &key))
		return false;
	saved = bpf_map_lookup_elem(&go_inflight, &key);
	if (!saved)
		return false;
	*args = *saved;
	bpf_map_delete_elem(&go_inflight, &key);
	return true;
}

static __always_inline int go_tls_read_return(struct lt_pt_regs *regs)
{
	struct lt_config *cfg = get_config();
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct lt_go_proc *proc;
	struct lt_go_args args;
	__s64 n = 0;

	if (!cfg)
		return 0;
	proc = bpf_map_lookup_elem(&go_procs, &pid);
	if (!proc || !go_take_read(regs, proc, pid, &args))
		return 0;
	/* Results: n in RAX, or on the stack after the receiver and the slice. */
	if (proc->abi == LT_GO_ABI_REGISTER)
		n = regs->ax;
	else if (!go_stack_arg(regs, 4, (__u64 *)&n))
		return 0;
	go_tls_emit(regs, cfg, pid, args.fd, LT_INGRESS, LT_SYS_GO_TLS_READ, args.buf, n);
	return 0;
}

/* At Read's call of runtime.memmove(to, from, n) (register ABI: AX, BX, CX),
 * before it runs: the n bytes at `from` are what Read returns.  The saved
 * buffer must be `to`, else the entry is another call's (left by a Read that
 * ended in an error before copying) and is dropped. */
static __always_inline int go_tls_read_copy(struct lt_pt_regs *regs)
{
	struct lt_config *cfg = get_config();
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct lt_go_proc *proc;
	struct lt_go_args args;

	if (!cfg)
		return 0;
	proc = bpf_map_lookup_elem(&go_procs, &pid);
	if (!proc || proc->abi != LT_GO_ABI_REGISTER || !go_take_read(regs, proc, pid, &args))
		return 0;
	if (regs->ax == args.buf)
		go_tls_emit(regs, cfg, pid, args.fd, LT_INGRESS, LT_SYS_GO_TLS_READ, regs->bx,
			    regs->cx);
	return 0;
}

/* crypto/tls: recordTypeApplicationData */
#define GO_TLS_RECORD_APPLICATION_DATA 23

/* The arguments of writeRecordLocked(c *Conn, typ recordType, data []byte). */
struct lt_go_write_record_args {
	__u64 conn;
	__u64 typ; /* a uint8, in a word of its own */
	__u64 buf;
	__u64 len;
};

static __always_inline int go_tls_write_record(struct lt_pt_regs *regs)
{
	struct lt_config *cfg = get_config();
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct lt_go_write_record_args args;
	struct lt_go_proc *proc;
	__s64 fd;

	if (!cfg || !pid_traced(cfg, pid))
		return 0;
	proc = bpf_map_lookup_elem(&go_procs, &pid);
	if (!proc)
		return 0;
	if (proc->abi == LT_GO_ABI_REGISTER) {
		args.conn = regs->ax;
		args.typ = regs->bx;
		args.buf = regs->cx;
		args.len = regs->di;
	} else if (read_user(&args, sizeof(args), (void *)(regs->sp + 8))) {
		return 0; /* stack ABI: the words after the return address */
	}
	if ((args.typ & 0xff) != GO_TLS_RECORD_APPLICATION_DATA)
		return 0; /* handshake, alerts, post-handshake messages */
	fd = go_conn_fd(proc, args.conn);
	if (fd < 0)
		return 0;
	go_tls_emit(regs, cfg, pid, fd, LT_EGRESS, LT_SYS_GO_TLS_WRITE, args.buf, args.len);
	return 0;
}

SEC("uprobe")
int lt_go_tls_read_enter(struct lt_pt_regs *regs)
{
	return go_tls_read_enter(regs);
}

SEC("uprobe")
int lt_go_tls_read_return(struct lt_pt_regs *regs)
{
	return go_tls_read_return(regs);
}

SEC("uprobe")
int lt_go_tls_read_copy(struct lt_pt_regs *regs)
{
	return go_tls_read_copy(regs);
}

SEC("uprobe")
int lt_go_tls_write_record(struct lt_pt_regs *regs)
{
	return go_tls_write_record(regs);
}

/* ---- process watching --------------------------------------------------- */

/* A header-only process event (exec or exit) for the Go process watcher. */
static __always_inline void emit_process_event(void *ctx, __u8 type)
{
	struct lt_config *cfg = get_config();
	struct lt_conn_key key;
	struct lt_conn none = {};
	struct lt_event_buf *ev;

	key.pid = bpf_get_current_pid_tgid() >> 32;
	key.fd = -1;
	if (!cfg || !pid_traced(cfg, key.pid))
		return;
	ev = scratch_event();
	if (!ev)
		return;
	fill_header(&ev->hdr, &key, &none, type, LT_EGRESS, 0, NULL);
	output(ctx, cfg, ev);
}

SEC("tracepoint/sched/sched_process_exec")
int lt_sched_process_exec(void *ctx)
{
	emit_process_event(ctx, LT_EVENT_EXEC);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int lt_sched_process_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 pid = id >> 32;

	if ((__u32)id != pid)
		return 0; /* a thread, not the process */
	bpf_map_delete_elem(&go_procs, &pid);
	emit_process_event(ctx, LT_EVENT_EXIT);
	return 0;
}

"""The layout of ``socket_trace.h`` in Python: generated, do not edit.

Edit the header, then run ``python -m libtrace.bpf.layout`` (see that module).
"""

from __future__ import annotations

import ctypes
import enum

#: Largest payload one event can carry (the scratch event lives in a plain array slot per CPU,
#: since per-CPU map values stop at 32 KiB): with the ring buffer, 64 KiB; with the perf buffer a
#: little less, since a perf record's size is a 16-bit field (8-byte record header, 4-byte sample
#: size, the event header, the payload: at most 65535). The user's payload cap is clamped to the
#: variant's limit.
MAX_PAYLOAD = 65536
MAX_PAYLOAD_PERFBUF = 65024
#: Scratch events per CPU, taken in turn: a kernel that preempts BPF programs on syscall
#: tracepoints (Debian's 7.3, lazy preemption) lets a second program run on the same CPU while
#: the first still fills its event (a power of two).
SCRATCH_SLOTS = 16
#: Default payload cap when the user sets none.
DEFAULT_PAYLOAD_CAP = 4096
#: iovecs followed per readv/writev/sendmsg/recvmsg call: the loops are unrolled (4.14 has no
#: bounded loops), so each one costs instructions.
MAX_IOV = 8
#: Messages followed per sendmmsg/recvmmsg call, and iovecs per message.
MAX_MMSG = 8
MAX_MMSG_IOV = 2
#: With the ring buffer and the 5.15+ helpers, small data events are gathered per CPU and output
#: a batch at a time (one ring reservation for many): the most a batch holds (the tracer may set
#: less: a small ring), and the largest event (header and payload) that goes through one; a
#: larger one is output alone.
BATCH_BYTES = 4096
BATCH_EVENT_MAX = 1024
#: A batch whose first event is older than this is output with its next one: the reader's time
#: order then waits for no CPU that gathers slowly.
BATCH_AGE_NS = 1000000
#: CPUs whose batches lt_flush_batches walks at most.
BATCH_MAX_CPUS = 1024
#: Sockets tracked at once (LRU: the oldest idle one goes first).
MAX_CONNS = 65536
#: No BTF: forked children remembered (child pid -> parent pid), and sockets just closed (a
#: parent that forks a handler closes its copy at once).
MAX_FORKS = 4096
MAX_CLOSED = 1024
#: BTF: the slots of the memory of fds known not to be traced sockets (files, pipes, unix
#: sockets; a power of two: see not_socket_slot()), and those of the thread groups' fd
#: generations (a power of two: a thread group's slot is its pid modulo it; see fd_gen()).
NOT_SOCKET_SLOTS = 65536
NOT_SOCKET_BITS = 16
FD_GEN_SLOTS = 32768
#: In-flight syscalls tracked at once (one per thread inside a syscall).
MAX_INFLIGHT = 16384
#: Entries of the pid and port filters.
MAX_FILTER = 64
#: Go programs followed at once, and Go TLS calls in flight.
MAX_GO_PROCS = 4096
MAX_GO_INFLIGHT = 16384


class EventFlag(enum.IntFlag):
    """``LT_FLAG_*``."""

    #: identity from connect/accept/bind tracking, not struct sock
    NO_BTF = 0x1
    #: remote address taken from the syscall's sockaddr
    ADDR_FROM_CALL = 0x2
    #: built with bpf_probe_read (pre-5.5 kernels)
    PROBE_READ = 0x4
    #: delivered through the perf buffer (pre-5.8 kernels)
    PERFBUF = 0x8
    #: TLS plaintext from the Go crypto/tls uprobes
    TLS = 0x10
    #: tuple completed in user space from /proc (never by BPF)
    PROC_LOOKUP = 0x100


class EventType(enum.IntEnum):
    """``enum lt_event_type``."""

    #: payload moved by a read/write-family syscall
    DATA = 1
    #: connect() on a traced socket succeeded or is in progress
    CONNECT = 2
    #: accept()/accept4() returned a new socket
    ACCEPT = 3
    #: close() of a traced socket
    CLOSE = 4
    #: a process called execve (Go TLS process watching)
    EXEC = 5
    #: a thread group leader exited (Go TLS process watching)
    EXIT = 6


class Direction(enum.IntEnum):
    """``enum lt_direction``."""

    EGRESS = 0
    INGRESS = 1


class Syscall(enum.IntEnum):
    """``enum lt_syscall``."""

    #: a value this version does not know (user space)
    UNKNOWN = 0
    READ = 1
    WRITE = 2
    READV = 3
    WRITEV = 4
    SENDTO = 5
    RECVFROM = 6
    SENDMSG = 7
    RECVMSG = 8
    SENDMMSG = 9
    RECVMMSG = 10
    CONNECT = 11
    ACCEPT = 12
    ACCEPT4 = 13
    CLOSE = 14
    #: crypto/tls.(*Conn).Read returned (uprobe)
    GO_TLS_READ = 15
    #: crypto/tls.(*Conn).writeRecordLocked: application data (uprobe)
    GO_TLS_WRITE = 16

    @classmethod
    def _missing_(cls, value: object) -> Syscall:
        return cls.UNKNOWN


class RawEvent(ctypes.Structure):
    """``struct lt_event``."""

    _fields_ = [
        #: bpf_ktime_get_ns() at syscall exit
        ("ts_ns", ctypes.c_uint64),
        #: 0 where bpf_get_current_cgroup_id is missing (< 4.18)
        ("cgroup_id", ctypes.c_uint64),
        #: bytes this socket moved in this direction before this chunk
        ("offset", ctypes.c_uint64),
        #: thread group id
        ("pid", ctypes.c_uint32),
        ("tid", ctypes.c_uint32),
        ("fd", ctypes.c_int32),
        #: bytes the syscall moved for this chunk
        ("size", ctypes.c_uint32),
        #: payload bytes that follow (<= the cap)
        ("captured", ctypes.c_uint32),
        #: LT_FLAG_*
        ("flags", ctypes.c_uint16),
        #: enum lt_event_type
        ("type", ctypes.c_uint8),
        #: enum lt_direction
        ("direction", ctypes.c_uint8),
        #: AF_INET or AF_INET6
        ("family", ctypes.c_uint16),
        #: IPPROTO_TCP or IPPROTO_UDP
        ("l4", ctypes.c_uint16),
        #: host byte order; 0 when unknown
        ("lport", ctypes.c_uint16),
        #: host byte order; 0 when unknown
        ("rport", ctypes.c_uint16),
        #: enum lt_syscall
        ("syscall", ctypes.c_uint16),
        ("_pad", ctypes.c_uint16),
        #: IPv4 in the first 4 bytes; network byte order
        ("laddr", ctypes.c_uint8 * 16),
        ("raddr", ctypes.c_uint8 * 16),
        ("comm", ctypes.c_char * 16),
    ]


class RawConfig(ctypes.Structure):
    """``struct lt_config``."""

    _fields_ = [
        #: the tracer's own thread group: never traced
        ("self_pid", ctypes.c_uint32),
        #: bytes copied per chunk, <= the variant's payload limit
        ("payload_cap", ctypes.c_uint32),
        #: nonzero: only pids in the pid filter map
        ("filter_pids", ctypes.c_uint32),
        #: nonzero: only sockets with a port in the port filter map
        ("filter_ports", ctypes.c_uint32),
        #: ring buffer: wake the reader once this much is pending
        ("wakeup_bytes", ctypes.c_uint32),
        ("fork_child_pid_offset", ctypes.c_uint32),
        #: lt_exitr_*: output a CPU's batch once it holds this much; 0: no batches
        ("batch_bytes", ctypes.c_uint32),
    ]


class RawBatch(ctypes.Structure):
    """``struct lt_batch``."""

    _fields_ = [
        #: 1 while a program or the flush fills or empties it
        ("busy", ctypes.c_uint64),
        #: bytes in data
        ("len", ctypes.c_uint32),
        #: events in data
        ("count", ctypes.c_uint32),
        #: the first event's timestamp
        ("first_ns", ctypes.c_uint64),
        ("data", ctypes.c_uint8 * 5120),
    ]


class RawFdGen(ctypes.Structure):
    """``struct lt_fd_gen``."""

    _fields_ = [
        #: the thread group (0: a free slot)
        ("pid", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        #: its generation
        ("gen", ctypes.c_uint64),
    ]


class RawFlushResult(ctypes.Structure):
    """``struct lt_flush_result``."""

    _fields_ = [
        #: nonzero: a batch was held by a program filling it; run again
        ("held", ctypes.c_uint32),
    ]


class Counter(enum.IntEnum):
    """``enum lt_counter``."""

    #: events output
    EVENTS = 0
    #: events the buffer had no room for
    LOST = 1
    #: syscalls whose arguments found inflight full: their bytes unseen
    INFLIGHT_FULL = 2
    #: sockets whose identity found conns full: their bytes unseen
    CONNS_FULL = 3
    #: Go TLS calls that found go_inflight full: their plaintext unseen
    GO_INFLIGHT_FULL = 4
    MAX = 5


class RawConnKey(ctypes.Structure):
    """``struct lt_conn_key``."""

    _fields_ = [
        ("pid", ctypes.c_uint32),
        ("fd", ctypes.c_int32),
    ]


class RawConn(ctypes.Structure):
    """``struct lt_conn``."""

    _fields_ = [
        #: per direction, indexed by enum lt_direction
        ("offset", ctypes.c_uint64 * 2),
        ("family", ctypes.c_uint16),
        ("l4", ctypes.c_uint16),
        ("lport", ctypes.c_uint16),
        ("rport", ctypes.c_uint16),
        ("laddr", ctypes.c_uint8 * 16),
        ("raddr", ctypes.c_uint8 * 16),
    ]


class RawArgs(ctypes.Structure):
    """``struct lt_args``."""

    _fields_ = [
        #: buffer, iovec array, msghdr or mmsghdr array
        ("buf", ctypes.c_uint64),
        #: sockaddr pointer; for socket(): the type argument
        ("addr", ctypes.c_uint64),
        #: iovcnt or vlen; for socket(): the family argument
        ("count", ctypes.c_uint32),
        ("fd", ctypes.c_int32),
        ("syscall", ctypes.c_uint16),
        ("_pad", ctypes.c_uint16 * 3),
    ]


class GoAbi(enum.IntEnum):
    """``enum lt_go_abi``."""

    #: Go < 1.17: arguments and results on the stack
    STACK = 0
    #: Go >= 1.17 (ABIInternal): RAX, RBX, ...; g in R14
    REGISTER = 1


class RawGoProc(ctypes.Structure):
    """``struct lt_go_proc``."""

    _fields_ = [
        #: enum lt_go_abi
        ("abi", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        #: tls.Conn.conn + 8: the interface's data pointer
        ("conn_data", ctypes.c_uint64),
        #: net.TCPConn.conn + net.conn.fd: the *netFD
        ("tcpconn_netfd", ctypes.c_uint64),
        #: net.netFD.pfd + poll.FD.Sysfd: the int fd
        ("netfd_sysfd", ctypes.c_uint64),
    ]

"""The :class:`Tracer`: load the socket programs, attach them, deliver events.

Theory of operation: :meth:`Tracer.start` probes the kernel, picks the
object variant (:mod:`.probe`), fills the configuration and filter maps,
loads and attaches every program, and opens the ring buffer (or the perf
buffer).  The buffer's callback decodes each record and appends it to a
queue; :meth:`Tracer.poll` waits on the buffer and returns what it gathered,
and :meth:`Tracer.events` is an iterator over repeated polls.  Closing
detaches the programs first, then drains what is still buffered, so an
orderly stop loses nothing that the kernel had already output.  Nothing is
pinned: if the process dies, the kernel frees every program, link and map
with its last file descriptor.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..bpf.build import Variant, object_path
from ..errors import BpfError, ConfigError, PrivilegeError, UnsupportedKernelError
from . import _libbpf, _uprobe_multi, perfbuf, proc, ringbuf
from .batches import FLUSH_PROGRAM, BatchFlush, batch_bytes
from .events import (
    DEFAULT_PAYLOAD_CAP,
    MAX_FILTER,
    MAX_INFLIGHT,
    MAX_PAYLOAD,
    MAX_PAYLOAD_PERFBUF,
    PROCESS_EVENTS,
    SCRATCH_SLOTS,
    Counter,
    DecodeError,
    RawConfig,
    RawConn,
    RawConnKey,
    SocketEvent,
    Syscall,
    decode,
    decode_batch,
    payload_bytes_reader,
)
from .golang.attach import ALL_PROGRAMS as GO_TLS_PROGRAMS
from .golang.attach import UPROBE_PROGRAMS, GoTlsWatcher
from .inflight import blocked_syscalls
from .kversion import linux_version_code
from .mounts import FORK_CHILD_PID_CLASSIC, ensure_bpffs, tracepoint_field_offset
from .no_btf import NoBtfIdentity
from .probe import (
    ARGS_AT_EXIT_PREFIX,
    ARGS_FROM_STACK_PREFIX,
    DATA_SYSCALLS,
    FD_SYSCALLS,
    NO_BTF_SYSCALLS,
    SYSCALLS,
    KernelFeatures,
    choose_args_at_exit,
    choose_batches,
    choose_variant,
    probe_features,
)
from .probe import validate_compat as _validate_compat
from .reorder import TimeOrder

if TYPE_CHECKING:
    from ..pcap.writer import PcapngWriter
    from ..records.live import LiveRecord

log = logging.getLogger(__name__)

_DATA_SYSCALL_IDS = frozenset(Syscall[name.upper()] for name in DATA_SYSCALLS)

#: The hash maps :meth:`Tracer.occupancy` counts (those whose entries come and go;
#: ``fd_gens`` and ``not_sockets`` are arrays, of a fixed size).
OCCUPANCY_MAPS = ("inflight", "conns", "forks", "closed",
                  "go_procs", "go_inflight", "tls_conns")  # fmt: skip
#: The programs that make the others forget what they know of an fd number (a
#: close, or a number reused by dup2, close_range or exec; a pid reused): attached
#: first.  Otherwise, while the tracer attaches, a data program may remember a
#: file's number as "not a socket", the file be closed before the close programs
#: are there to say so, and a socket that takes the number next go untraced until
#: its process closes something (seen: redis-server read /proc/self/stat while
#: the programs attached, and the next connection it accepted was missed).
FORGETTING_PROGRAMS = (
    "lt_enter_close", "lt_exit_close", "lt_sched_process_fork",
    *(f"lt_{end}_{name}" for name in FD_SYSCALLS for end in ("enter", "exit")),
)  # fmt: skip
#: Default delay before attaching to a newly started Go program (as in the seed).
DEFAULT_GO_ATTACH_DELAY = 120.0
#: Default ring buffer size (the perf buffer gets about as much, split per CPU).
DEFAULT_BUFFER_BYTES = 8 << 20
#: Wake the reader when this much is pending in the ring buffer (or was written
#: to one CPU's perf ring): one wakeup per event would cost the traced programs
#: more than the copies do.
DEFAULT_WAKEUP_BYTES = 256 << 10
#: Longest wait inside one poll; it bounds the latency of an idle buffer,
#: since the programs skip most wakeups.
POLL_TIMEOUT_MS = 100
#: Events one poll hands over at most: under a steady flood, libbpf would
#: otherwise keep consuming (and this process keep queueing) without end.
MAX_BATCH = 8192
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
#: Events the tracer consumes itself (the Go TLS process watcher's).


@dataclass(frozen=True, slots=True, kw_only=True)
class TracerConfig:
    """Everything a :class:`Tracer` can be told; validated on construction."""

    #: Trace only these processes (thread group ids); empty: all.
    pids: tuple[int, ...] = ()
    #: Trace only sockets with one of these local or remote ports; empty: all.
    ports: tuple[int, ...] = ()
    #: Bytes copied per chunk (1 … 65536; the perf buffer of old kernels holds 65024).
    payload_cap: int = DEFAULT_PAYLOAD_CAP
    #: Ring buffer bytes (a power of two, at least one page).
    buffer_bytes: int = DEFAULT_BUFFER_BYTES
    #: Old-kernel paths to force: any of probe.COMPAT_SWITCHES ("perfbuf", "probe-read",
    #: "no-btf", "perf-uprobes", "enter-args", "stack-regs", "no-batch").
    force_compat: frozenset[str] = frozenset()
    #: An external BTF file for kernels built without BTF.
    btf_file: str | None = None
    #: Wake the reader once this much is pending in the ring buffer (or was written
    #: to one CPU's perf ring); at most a quarter of the buffer is used.
    wakeup_bytes: int = DEFAULT_WAKEUP_BYTES
    #: Trace Go programs' TLS plaintext with uprobes on crypto/tls.
    go_tls: bool = True
    #: Seconds a newly exec'd Go program must run before its uprobes attach
    #: (programs running when the tracer starts are attached at once).
    go_attach_delay: float = DEFAULT_GO_ATTACH_DELAY
    #: Threads that may be inside a traced socket syscall at once (the
    #: ``inflight`` map's entries); past it, calls are counted in
    #: ``TracerStats.inflight_full`` and their bytes go unseen.
    inflight_entries: int = MAX_INFLIGHT

    def __post_init__(self) -> None:
        if not 1 <= self.payload_cap <= MAX_PAYLOAD:
            raise ConfigError(f"payload cap must be 1…{MAX_PAYLOAD} bytes, not {self.payload_cap}")
        if any(not 0 < pid < 1 << 22 for pid in self.pids):
            raise ConfigError(f"invalid pid in {list(self.pids)}")
        if any(not 0 < port < 65536 for port in self.ports):
            raise ConfigError(f"invalid port in {list(self.ports)}")
        if len(self.pids) > MAX_FILTER or len(self.ports) > MAX_FILTER:
            raise ConfigError(f"at most {MAX_FILTER} pids and {MAX_FILTER} ports can be filtered")
        size = self.buffer_bytes
        if size < PAGE_SIZE or size & (size - 1):
            raise ConfigError(
                f"buffer size must be a power of two of at least {PAGE_SIZE}, not {size}"
            )
        if self.wakeup_bytes < 1:
            raise ConfigError(f"wakeup bytes must be at least 1, not {self.wakeup_bytes}")
        if not 1 <= self.inflight_entries <= 1 << 22:
            raise ConfigError(f"inflight entries must be 1…{1 << 22}, not {self.inflight_entries}")
        object.__setattr__(self, "force_compat", _validate_compat(self.force_compat))
        if not 0 <= self.go_attach_delay <= 86400:
            raise ConfigError(f"Go attach delay must be 0…86400 s, not {self.go_attach_delay}")
        if self.btf_file is not None and not os.path.isfile(self.btf_file):
            raise ConfigError(f"BTF file {self.btf_file} does not exist")


@dataclass(slots=True)
class TracerStats:
    """Counters of one tracing session."""

    events: int = 0  #: events handed to the caller (poll, events, drain)
    lost: int = 0  #: events the kernel could not output (buffer full)
    bytes: int = 0  #: payload bytes of the events handed over
    kernel_events: int = 0  #: events the programs output
    decode_errors: int = 0
    #: exec/exit events the tracer consumed itself (the Go TLS watcher's)
    process_events: int = 0
    #: events read but not handed over: a no-BTF chunk of a socket that
    #: turned out not to be inet, or events still queued when :meth:`Tracer.close`
    #: ran before anyone drained them
    dropped: int = 0
    #: program runs the kernel skipped because another tracing program was
    #: active on that CPU (kernels from 5.12 count them): each may have taken
    #: an event, or a syscall's bytes, with it unseen.  Not part of ``lost``,
    #: which counts what the programs knew they could not output.
    missed: int = 0
    #: syscalls whose saved arguments found the ``inflight`` map full (more
    #: threads inside socket syscalls at once than its entries): their bytes unseen
    inflight_full: int = 0
    #: sockets whose identity found the ``conns`` map full: their bytes unseen
    conns_full: int = 0
    #: Go TLS calls that found ``go_inflight`` full: their plaintext unseen
    go_inflight_full: int = 0

    def accounted(self) -> int:
        """Every event the programs output ends in exactly one of these counters:
        after a drain, ``accounted() == kernel_events``."""
        return self.events + self.process_events + self.dropped + self.decode_errors


class Tracer:
    """Capture the bytes that processes send and receive on inet sockets.

    Use it as a context manager::

        with Tracer(ports=(6379,)) as tracer:
            for event in tracer.events(duration=5):
                print(event.comm, event.direction.name, event.data[:40])

    Raises (from :meth:`start`):
        PrivilegeError: not root and without CAP_BPF/CAP_PERFMON.
        UnsupportedKernelError: no syscall tracepoints, or BPF is unavailable.
        BpfError: loading or attaching failed otherwise.
    """

    def __init__(self, config: TracerConfig | None = None, **options: object) -> None:
        if config is None:
            config = TracerConfig(**options)  # type: ignore[arg-type]
        elif options:
            config = replace(config, **options)  # type: ignore[arg-type]
        self.config = config
        self.features: KernelFeatures | None = None
        self.variant: Variant | None = None
        #: One sentence per choice made when picking the variant.
        self.reasons: list[str] = []
        #: The data syscalls' exit programs read their own arguments (no enter
        #: programs for them): the prefix of those programs, else None; see
        #: probe.choose_args_at_exit.
        self.args_at_exit: str | None = None
        #: Those programs gather their events per CPU (see batches.py).
        self.batching = False
        #: Outputs the batches before each read (None: no batches).
        self._flush: BatchFlush | None = None
        self._object: _libbpf.BpfObject | None = None
        #: blocked syscalls found at attach that the full inflight map could not take
        self._seeded_full = 0
        #: events left in the batches once detached and flushed (see _detach_and_read_all)
        self._unflushed = 0
        self._buffer: (
            ringbuf.MappedRingBuffer
            | _libbpf.RingBuffer
            | perfbuf.DecodingPerfBuffer
            | _libbpf.PerfBuffer
            | None
        ) = None
        self._queue: list[SocketEvent] = []
        #: Events held until no earlier one can still arrive (see reorder.py).
        self._order: TimeOrder | None = None
        #: the `bytes` counter's sum of a batch (one compiled call where there is one)
        self._payload_bytes = payload_bytes_reader()
        self._stats = TracerStats()
        self._perf_lost = 0
        self._stop = threading.Event()
        #: True once the programs are detached and the buffer read to its end.
        self._drained = False
        self._no_btf: NoBtfIdentity | None = None
        #: Follows Go programs and attaches the TLS uprobes (None: Go TLS off).
        self.go_tls: GoTlsWatcher | None = None
        #: Features asked for that this kernel refused, and the kernel's reason
        #: (``"go_tls"``: its programs did not load; syscall capture runs on).
        self.unavailable: dict[str, str] = {}

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> Tracer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Load and attach the programs; events flow from now on."""
        if self._object is not None:
            return
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        self.features = probe_features()
        ensure_bpffs()  # not needed by the tracer itself, but by users who pin
        self.variant, self.reasons = choose_variant(
            self.features, self.config.force_compat, self.config.btf_file
        )
        self.args_at_exit = choose_args_at_exit(
            self.features, self.variant, self.config.force_compat, self.reasons
        )
        self.batching = choose_batches(
            self.variant, self.args_at_exit, self.config.force_compat, self.reasons
        )
        wanted = SYSCALLS + (FD_SYSCALLS if self.variant.btf else NO_BTF_SYSCALLS)
        missing = [name for name in wanted if name not in self.features.syscall_tracepoints]
        if set(SYSCALLS) <= set(missing):
            raise UnsupportedKernelError(
                "this kernel has no syscall tracepoints (CONFIG_FTRACE_SYSCALLS is off)"
            )
        path = object_path(self.variant)
        log.info("loading %s (%s)", path.name, "; ".join(self.reasons))
        if not self.variant.ringbuf and self.config.payload_cap > MAX_PAYLOAD_PERFBUF:
            self.reasons.append(
                f"payload cap lowered to {MAX_PAYLOAD_PERFBUF} bytes: "
                "the perf buffer's events hold no more"
            )
        go_tls = self.config.go_tls
        try:
            obj, multi = self._load(path, missing, go_tls=go_tls)
        except PrivilegeError:
            raise
        except BpfError as exc:
            if not go_tls:
                raise
            # Loading degrades per feature: the syscall capture needs none of
            # the Go TLS programs, so it runs without them and says why.
            why = f"Go TLS off: its programs did not load on this kernel ({exc})"
            log.warning("%s", why)
            self.reasons.append(why)
            self.unavailable["go_tls"] = str(exc)
            go_tls = False
            obj, multi = self._load(path, missing, go_tls=False)
        self._write_config(obj)
        if self.batching:
            self._flush = BatchFlush(obj)
        if not self.variant.btf:
            self._no_btf = NoBtfIdentity()
            self._seed_sockets(obj)
        try:
            obj.attach_all(first=FORGETTING_PROGRAMS)
        except BpfError as exc:
            if exc.errno == errno.EEXIST:
                # Before 4.15 ("bpf: permit multiple bpf attachments for a single
                # perf event") a tracepoint takes one BPF program at a time.
                raise BpfError(exc.operation, exc.errno,
                               "another BPF program holds this tracepoint; before 4.15 a "
                               "tracepoint takes only one: is another tracer running?") from None
            raise
        self._seed_inflight(obj)
        if go_tls:
            self.go_tls = GoTlsWatcher(
                obj, delay=self.config.go_attach_delay, pids=self.config.pids, multi=multi
            )
            self.go_tls.start()
        # Time order for both buffers: the perf buffer's rings are per CPU, and a
        # kernel that preempts BPF programs (lazy preemption, 7.x) can output a
        # preempted program's event after later ones of other threads (a close
        # after the next accept of the same fd number).
        self._order = TimeOrder()
        events_fd = obj.map("events").fd
        if self.variant.ringbuf and ringbuf.usable():
            # Read from the mapping: no ctypes call per record (and, with the
            # compiled decoder, no Python call per record at all).
            self._buffer = ringbuf.MappedRingBuffer(
                events_fd, obj.map("events").max_entries, self._on_record,
                max_batch=MAX_BATCH, on_events=self._on_events,
            )  # fmt: skip
        elif self.variant.ringbuf:
            self._buffer = _libbpf.RingBuffer(events_fd, self._on_record, max_batch=MAX_BATCH)
        else:
            per_cpu = self.config.buffer_bytes // _libbpf.num_possible_cpus()
            pages = max(1, 1 << max(0, (per_cpu // PAGE_SIZE).bit_length() - 1))
            perf = _libbpf.PerfBuffer(
                events_fd,
                pages,
                lambda _cpu, data: self._on_record(data),
                self._on_perf_lost,
                # The ring buffer's rule, per CPU ring: a wakeup every 64 samples
                # had the reader poll ~3 000 times a second under redis-benchmark,
                # and cost it about 1.5 times the CPU per event.
                wakeup_bytes=min(self.config.wakeup_bytes, pages * PAGE_SIZE // 4),
            )
            # The rings walked in compiled code where it can be: no ctypes
            # callback per sample.
            self._buffer = (
                perfbuf.DecodingPerfBuffer(
                    perf, self._on_events, self._on_perf_lost, max_batch=MAX_BATCH
                )
                if perfbuf.usable(perf)
                else perf
            )

    def _load(
        self, path: Path, missing: list[str], *, go_tls: bool
    ) -> tuple[_libbpf.BpfObject, bool]:
        """Open and load the object (``self._object`` once loaded); the bool says
        whether the Go TLS uprobes use uprobe_multi links.  On failure nothing stays open."""
        assert self.variant is not None and self.features is not None
        btf_path = self.config.btf_file if self.variant.btf and not self.features.btf else None
        obj = _libbpf.BpfObject.open(path, btf_custom_path=btf_path)
        try:
            for name in missing:
                # A kernel without one syscall's tracepoints still traces the rest
                # (and one without close_range or dup2 has nothing to follow).
                if name not in FD_SYSCALLS:
                    log.warning("no tracepoints for %s on this kernel: not traced", name)
                obj.set_autoload(f"lt_enter_{name}", False)
                obj.set_autoload(f"lt_exit_{name}", False)
            self._choose_data_programs(obj, missing)
            multi = False
            if not go_tls:
                for name in GO_TLS_PROGRAMS:
                    obj.set_autoload(name, False)
            else:
                multi = self._choose_uprobe_links(obj)
            if self.variant.ringbuf:
                obj.resize_map("events", self.config.buffer_bytes)
            # SCRATCH_SLOTS scratch events per CPU, indexed by CPU and turn.
            obj.resize_map("scratch", _libbpf.num_possible_cpus() * SCRATCH_SLOTS)
            obj.resize_map("inflight", self.config.inflight_entries)
            if self.variant.batches:
                obj.resize_map("batches", _libbpf.num_possible_cpus())  # one per CPU
                if not self.batching:
                    obj.set_autoload(FLUSH_PROGRAM, False)
            code = linux_version_code()
            if code is not None:
                # uname()'s version, libbpf's default, is not what 4.14.y/4.19.y compare.
                obj.set_kversion(code)
            obj.load()
        except BaseException:
            obj.close()
            raise
        self._object = obj
        return obj, multi

    def _choose_data_programs(self, obj: _libbpf.BpfObject, missing: list[str]) -> None:
        """One program per data syscall where the exit reads the arguments
        (``lt_exitr_*`` or ``lt_exitk_*``), else the enter/exit pairs; the
        objects without BTF have only the pairs."""
        assert self.variant is not None
        if not self.variant.btf:
            return
        carried = [ARGS_FROM_STACK_PREFIX]
        if self.variant.args_at_exit:
            carried.append(ARGS_AT_EXIT_PREFIX)
        for name in DATA_SYSCALLS:
            if self.args_at_exit:
                obj.set_autoload(f"lt_enter_{name}", False)
                obj.set_autoload(f"lt_exit_{name}", False)
            for prefix in carried:
                if prefix != self.args_at_exit or name in missing:
                    obj.set_autoload(prefix + name, False)

    def _choose_uprobe_links(self, obj: _libbpf.BpfObject) -> bool:
        """uprobe_multi links where the kernel has them (probed), else perf events."""
        if "perf-uprobes" in self.config.force_compat:
            self.reasons.append("Go TLS uprobes: perf events (forced by perf-uprobes)")
            return False
        if not _uprobe_multi.supported():
            self.reasons.append("Go TLS uprobes: perf events (the kernel lacks uprobe_multi)")
            return False
        for name in UPROBE_PROGRAMS:
            obj.set_expected_attach_type(name, _uprobe_multi.BPF_TRACE_UPROBE_MULTI)
        self.reasons.append("Go TLS uprobes: uprobe_multi links")
        return True

    @property
    def payload_cap(self) -> int:
        """The cap in force: the configured one, within the loaded variant's limit."""
        if self.variant is not None and not self.variant.ringbuf:
            return min(self.config.payload_cap, MAX_PAYLOAD_PERFBUF)
        return self.config.payload_cap

    def _write_config(self, obj: _libbpf.BpfObject) -> None:
        cfg = RawConfig(
            self_pid=os.getpid(),
            payload_cap=self.payload_cap,
            filter_pids=int(bool(self.config.pids)),
            filter_ports=int(bool(self.config.ports)),
            wakeup_bytes=min(self.config.wakeup_bytes, self.config.buffer_bytes // 4),
            batch_bytes=batch_bytes(self.config.buffer_bytes) if self.batching else 0,
            fork_child_pid_offset=tracepoint_field_offset("sched/sched_process_fork", "child_pid")
            or FORK_CHILD_PID_CLASSIC,
        )
        obj.map("config").update(bytes(4), bytes(cfg))
        for name, values in (("pid_filter", self.config.pids), ("port_filter", self.config.ports)):
            for value in values:
                obj.map(name).update(value.to_bytes(4, "little"), b"\1")

    def _seed_inflight(self, obj: _libbpf.BpfObject) -> None:
        """Arguments of the syscalls threads were already blocked in (see inflight.py);
        never over what an enter program saved since the attach."""
        inflight = obj.map("inflight")
        for pid, tid, args in blocked_syscalls(self.config.pids or None):
            if pid == os.getpid():
                continue
            if self.args_at_exit and args.syscall in _DATA_SYSCALL_IDS:
                continue  # their exit programs read the arguments themselves
            try:
                inflight.update((pid << 32 | tid).to_bytes(8, "little"), bytes(args),
                                _libbpf.BPF_NOEXIST)  # fmt: skip
            except BpfError as exc:  # EEXIST: saved meanwhile (the programs run already)
                if exc.errno == errno.E2BIG:  # full: that call's bytes go unseen, counted
                    self._seeded_full += 1

    def _seed_sockets(self, obj: _libbpf.BpfObject) -> None:
        """No BTF: tell the kernel which fds are sockets already."""
        conns = obj.map("conns")
        pids = self.config.pids or None
        for pid, fd, sock in proc.socket_fds(pids):
            if pid == os.getpid():
                continue
            value = RawConn(family=sock.family, l4=sock.l4, lport=sock.lport, rport=sock.rport)
            value.laddr[:] = sock.laddr
            value.raddr[:] = sock.raddr
            conns.update(bytes(RawConnKey(pid=pid, fd=fd)), bytes(value))

    def stop(self) -> None:
        """Ask :meth:`events` to finish; safe from signal handlers and threads."""
        self._stop.set()

    def drain(self) -> list[SocketEvent]:
        """Detach the programs, then hand over every event they already output.

        :meth:`events` ends with this when it stops (Ctrl-C, ``duration``), so an
        orderly stop loses nothing that reached the buffer.  No event is output
        after it; :meth:`close` then only frees.
        """
        obj = self._object
        if obj is not None and not self._drained:
            self._detach_and_read_all(obj)
        return self._hand_over()

    def _detach_and_read_all(self, obj: _libbpf.BpfObject) -> None:
        self._drained = True
        if self.go_tls is not None:
            self.go_tls.close()
        obj.detach_all()
        if self._flush is not None:
            self._flush()  # what the programs gathered and had not output yet
        if self._buffer is not None:
            # One consume hands over at most MAX_BATCH: read until empty.
            while self._buffer.consume():
                pass
        if self._flush is not None:
            # Held by a program that never let go (preempted past the flush's
            # retries): never output, so counted lost, not left unsaid.
            self._unflushed = self._flush.pending()
        self._refresh_kernel_counters(obj)

    def close(self) -> None:
        """Detach, read what the kernel already output, free everything.

        Events read here that nobody takes (no :meth:`drain` before) are
        counted in ``stats().dropped``, never silently lost.
        """
        obj, self._object = self._object, None
        if obj is None:
            return
        try:
            if not self._drained:
                self._detach_and_read_all(obj)
            self._stats.dropped += len(self._queue) + len(self._order or ())
            self._queue.clear()
        finally:
            if self._buffer is not None:
                self._buffer.close()
                self._buffer = None
            obj.close()

    # -- delivery ----------------------------------------------------------

    def _on_record(self, data: bytes) -> None:
        try:
            # A ring record may be a batch (a perf sample is one event, padded).
            events = decode_batch(data) if self.batching else [decode(data)]
        except DecodeError as exc:
            self._stats.decode_errors += 1
            log.warning("dropped a malformed event: %s", exc)
            return
        for event in events:
            if event.type in PROCESS_EVENTS:
                self._stats.process_events += 1
                if self.go_tls is not None:
                    self.go_tls.on_event(event)
            else:
                self._queue.append(event)

    def _on_events(
        self, events: list[SocketEvent], process: list[SocketEvent], not_events: int
    ) -> None:
        """:meth:`_on_record` for a batch decoded in compiled code."""
        if not_events:
            self._stats.decode_errors += not_events
            log.warning("dropped %d malformed events", not_events)
        for event in process:
            self._stats.process_events += 1
            if self.go_tls is not None:
                self.go_tls.on_event(event)
        self._queue += events

    def _hand_over(self, mark_ns: int | None = None) -> list[SocketEvent]:
        """What the caller gets now, in time order up to ``mark_ns`` (every
        event output before it has been read; None: everything)."""
        gathered, self._queue = self._queue, []
        if self._order is not None:
            self._order.add(gathered)
            gathered = self._order.release(mark_ns)
        if self._no_btf is not None:
            # After the time order: the /proc cache per (pid, fd) ends with a
            # CLOSE, and a reused fd must not see the previous socket's entry.
            completed = self._no_btf.complete_all(gathered)
            self._stats.dropped += len(gathered) - len(completed)
            gathered = completed
        self._stats.events += len(gathered)
        self._stats.bytes += self._payload_bytes(gathered)
        return gathered

    def _on_perf_lost(self, _cpu: int, count: int) -> None:
        self._perf_lost += count

    def poll(self, timeout_ms: int = POLL_TIMEOUT_MS) -> list[SocketEvent]:
        """Wait up to ``timeout_ms`` for events; return those gathered."""
        if self._buffer is None:
            raise BpfError("poll the event buffer", errno.EBADF, "the tracer is not started")
        if self._drained:
            return self._hand_over()
        self._buffer.poll(timeout_ms)
        mark = time.monotonic_ns()
        if self._flush is not None:
            self._flush()  # after the mark: what was stamped before it is in the ring
        # Programs skip wakeups while little is pending: collect that too.
        self._buffer.consume()
        if self.go_tls is not None:
            self.go_tls.tick()
        return self._hand_over(mark)

    def events(self, duration: float | None = None) -> Iterator[SocketEvent]:
        """Yield events until :meth:`stop` is called or ``duration`` seconds pass,
        then every event still in the buffer (see :meth:`drain`)."""
        for batch in self.batches(duration):
            yield from batch

    def batches(self, duration: float | None = None) -> Iterator[list[SocketEvent]]:
        """:meth:`events` a poll's batch at a time (non-empty lists), for a caller
        with a cost per batch rather than per event (a flush of its output)."""
        deadline = None if duration is None else time.monotonic() + duration
        while not self._stop.is_set():
            timeout = POLL_TIMEOUT_MS
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                timeout = min(timeout, max(1, int(left * 1000)))
            batch = self.poll(timeout)
            if batch:
                yield batch
        last = self.drain()
        if last:
            yield last

    def run(self, callback: Callable[[SocketEvent], None], duration: float | None = None) -> None:
        """Call ``callback`` with every event until stopped (the callback form)."""
        for event in self.events(duration):
            callback(event)

    # -- counters ----------------------------------------------------------

    def _refresh_kernel_counters(self, obj: _libbpf.BpfObject) -> None:
        counters = obj.map("counters")

        def total(index: int) -> int:
            return sum(
                int.from_bytes(slot[:8], "little")
                for slot in counters.lookup_percpu(index.to_bytes(4, "little"))
            )

        self._stats.kernel_events = total(Counter.EVENTS)
        self._stats.inflight_full = total(Counter.INFLIGHT_FULL) + self._seeded_full
        self._stats.conns_full = total(Counter.CONNS_FULL)
        self._stats.go_inflight_full = total(Counter.GO_INFLIGHT_FULL)
        self._stats.missed = obj.recursion_misses()
        # The programs count every failed output; perf's own lost records
        # count the same drops, so take the larger, never the sum.
        self._stats.lost = max(total(Counter.LOST), self._perf_lost) + self._unflushed
        if self._drained:
            # Once drained, all that the programs output has been read.  On old
            # kernels (4.14, 4.19 here; not 5.4) bpf_perf_event_output returns 0
            # even when the ring is full (perf_event_output() was void), and the
            # ring reports a loss only with its next sample: what was counted
            # as output but never read is what was lost.
            read = self._stats.accounted() + len(self._queue) + len(self._order or ())
            hidden = self._stats.kernel_events - read
            if hidden > 0:
                self._stats.kernel_events -= hidden
                self._stats.lost = max(self._stats.lost, hidden)

    def occupancy(self) -> dict[str, int]:
        """Entries in each of the programs' hash maps now (for soak runs: none
        may grow without bound); {} before the programs are loaded.  Each map is
        walked key by key, so call it seconds apart, not per event."""
        obj = self._object
        if obj is None:
            return {}
        out: dict[str, int] = {}
        for name in OCCUPANCY_MAPS:
            try:
                keys = obj.map(name).keys()  # walked with bpf_map_get_next_key
                out[name] = sum(1 for _ in keys)
            except BpfError:  # not in this variant (no-BTF maps, Go TLS off)
                continue
        return out

    def stats(self) -> TracerStats:
        """Events delivered, lost in the kernel, and payload bytes, so far."""
        if self._object is not None:
            self._refresh_kernel_counters(self._object)
        return replace(self._stats)

    def records(
        self,
        duration: float | None = None,
        protocols: list[str] | tuple[str, ...] | set[str] | frozenset[str] | None = None,
        *,
        write: str | os.PathLike[str] | None = None,
    ) -> Iterator[LiveRecord]:
        """Yield L7 records until :meth:`stop` or ``duration``; ``protocols`` filters them.

        Each is a :class:`~libtrace.records.LiveRecord`: the exchange, its
        endpoints, and ``pid``, ``comm``, ``side``, ``tls`` and ``container``;
        its ``to_json()`` is the ``libtrace trace --records --json`` object.
        With ``write``, the events are also written to that pcapng file
        (``libtrace trace --write``; see :class:`~libtrace.pcap.PcapngWriter`),
        which is created before this returns and closed when the records end.
        """
        from ..pcap.writer import PcapngWriter  # layers above this one, used on demand
        from ..records import ContainerResolver, RecordPipeline
        from ..records.live import trace_records

        if write is None:
            return trace_records(self, duration, protocols)
        containers = ContainerResolver()  # one for the records and the comments
        writer = PcapngWriter.open(write, containers=containers)
        pipeline = RecordPipeline(protocols=protocols, containers=containers)
        return _closing(trace_records(self, duration, pipeline=pipeline, writer=writer), writer)


def _closing(records: Iterator[LiveRecord], writer: PcapngWriter) -> Iterator[LiveRecord]:
    """``records``, then ``writer`` closed (also when the caller stops early)."""
    with writer:
        yield from records

"""Follow Go programs and attach the TLS uprobes to them (go_tls.bpf.c).

Theory of operation: at start, every running process whose executable is a
Go binary with ``crypto/tls.(*Conn).Read/Write`` is attached at once.  After
that the kernel reports each ``execve`` and each process exit (the
``sched_process_exec/exit`` programs); a process that exec'd is attached
only once it has run for ``delay`` seconds, so the short-lived programs of a
busy machine (build steps, health checks) are never attached and detached
over and over; an exit cancels a pending attach or detaches.  :meth:`tick`
does the due attaches; the tracer calls it after every poll, so no thread
is needed.

Attaching one process means: inspect its executable (cached per file, by
device, inode, size and mtime — many processes share one binary), write its
calling convention and struct offsets to the ``go_procs`` map, then one
uprobe at each function's entry (on the stack check's jump, which the kernel
emulates: see :func:`.inspect.entry_probe_offset`) and, for ``Read``, one on
its call of ``runtime.memmove`` (register ABI) or else one on each of its RET
instructions (:func:`probe_sites`), all for that pid only.  The probes go on
``/proc/<pid>/exe``, which names the right file inside containers too.  A
process that exits while being attached makes the attach fail: that is
expected, and everything attached so far is removed again.

Where the kernel has uprobe_multi links (6.6+; :mod:`.._uprobe_multi`), each
program's probes of one process are one link: three links per process, freed
in milliseconds.  Elsewhere every probe is a perf-event link, and the kernel
frees those one RCU grace period apiece, one after another (about 0.15 s per
probe here): those are destroyed by a background thread, so an exiting Go
program never stalls the event loop; :meth:`close` waits until every probe is
gone.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ...errors import BpfError, GoBinaryError
from .. import _libbpf, _uprobe_multi
from ..events import EventType, GoAbi, RawGoProc, SocketEvent
from .inspect import TLS_READ, TLS_WRITE_RECORD, GoBinary, inspect_binary

log = logging.getLogger(__name__)

#: Program names in go_tls.bpf.c per probed function: (at the entry, at each RET).
PROGRAMS: dict[str, tuple[str, str | None]] = {
    TLS_READ: ("lt_go_tls_read_enter", "lt_go_tls_read_return"),
    TLS_WRITE_RECORD: ("lt_go_tls_write_record", None),
}
#: On Read's one call of runtime.memmove, instead of its RETs where there is one
#: (register ABI, x86-64): a call is emulated by the kernel, a RET single-stepped.
COPY_PROGRAM = "lt_go_tls_read_copy"
#: The uprobe programs (attached per process).
UPROBE_PROGRAMS = (*(name for pair in PROGRAMS.values() for name in pair if name), COPY_PROGRAM)
#: The process-watching tracepoint programs.
WATCH_PROGRAMS = ("lt_sched_process_exec", "lt_sched_process_exit")
ALL_PROGRAMS = UPROBE_PROGRAMS + WATCH_PROGRAMS

_ABI = {"stack": GoAbi.STACK, "register": GoAbi.REGISTER}


def proc_entry(binary: GoBinary) -> RawGoProc | None:
    """The ``go_procs`` value for ``binary``, or None if its offsets are unknown."""
    o = binary.offsets
    try:
        return RawGoProc(
            abi=_ABI[binary.abi],
            # The net.Conn interface is (itab, data): the data word follows the itab.
            conn_data=o["crypto/tls.Conn.conn"] + 8,
            tcpconn_netfd=o["net.TCPConn.conn"] + o["net.conn.fd"],
            netfd_sysfd=o["net.netFD.pfd"] + o["internal/poll.FD.Sysfd"],
        )
    except KeyError:
        return None


def probe_sites(binary: GoBinary) -> list[tuple[str, list[int]]]:
    """(program, file offsets) of the uprobes a process running ``binary`` gets:
    each function's entry probe (on its stack check's jump), then Read's
    plaintext copy where the inspector found exactly one under the register
    ABI, else each of Read's RETs."""
    sites: list[tuple[str, list[int]]] = []
    for name, (enter, ret) in PROGRAMS.items():
        function = binary.functions[name]
        sites.append((enter, [function.offset + function.entry_offset]))
        if ret is None:
            continue
        if binary.abi == "register" and len(function.copy_offsets) == 1:
            sites.append((COPY_PROGRAM, [function.offset + function.copy_offsets[0]]))
        elif function.ret_offsets:
            sites.append((ret, [function.offset + r for r in function.ret_offsets]))
    return sites


@dataclass(slots=True)
class WatchStats:
    attached: int = 0  #: attaches done
    detached: int = 0  #: detaches done (exit, exec of another image, or stop)
    vanished: int = 0  #: processes gone before or while being attached
    skipped: int = 0  #: executables that are not Go or have no crypto/tls


@dataclass(slots=True)
class _Attached:
    binary: GoBinary
    #: perf-event links, (program, libbpf link), owned by the BPF object
    links: list[tuple[str, int]] = field(default_factory=list)
    #: uprobe_multi link fds, owned here
    multi: list[int] = field(default_factory=list)

    @property
    def probes(self) -> int:
        """How many uprobes this attachment holds."""
        if not self.multi:
            return len(self.links)
        return sum(len(offsets) for _, offsets in probe_sites(self.binary))


#: The cache key of an executable: (device, inode, size, mtime).
FileKey = tuple[int, int, int, int]
#: Inspections, shared by every watcher of this process (most executables
#: on a machine are not Go; each is read once).  Bounded: cleared when full.
_INSPECTED: dict[FileKey, GoBinary | None] = {}
_INSPECTED_MAX = 4096


class GoTlsWatcher:
    """Attach the Go TLS uprobes to Go programs, now and as they start."""

    def __init__(
        self,
        obj: _libbpf.BpfObject,
        *,
        delay: float,
        multi: bool = False,
        pids: Iterable[int] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._obj = obj
        self._procs = obj.map("go_procs")
        self.delay = delay
        #: uprobe_multi links (the programs were loaded for them), else perf-event links
        self.multi = multi
        self._only = frozenset(pids)
        self._clock = clock
        #: pid → when it may be attached (monotonic seconds)
        self.pending: dict[int, float] = {}
        self.attached: dict[int, _Attached] = {}
        self.stats = WatchStats()
        self._doomed: queue.SimpleQueue[list[int] | None] = queue.SimpleQueue()
        self._reaper: threading.Thread | None = None

    # -- the tracer's calls --------------------------------------------------

    def start(self) -> None:
        """Attach to the Go programs already running."""
        me = os.getpid()
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) != me and self._wanted(int(name)):
                self.attach(int(name))

    def on_event(self, event: SocketEvent) -> None:
        """Take an EXEC or EXIT event from the kernel."""
        pid = event.pid
        if event.type is EventType.EXEC and self._wanted(pid):
            # A new image: whatever was attached probed the old one.
            self.detach(pid)
            self.pending[pid] = self._clock() + self.delay
        elif event.type is EventType.EXIT:
            self.pending.pop(pid, None)
            self.detach(pid)

    def tick(self) -> None:
        """Attach the programs whose delay has passed."""
        if not self.pending:
            return
        now = self._clock()
        for pid in [pid for pid, due in self.pending.items() if due <= now]:
            del self.pending[pid]
            self.attach(pid)

    def close(self) -> None:
        """Detach from every process; returns once every probe is destroyed."""
        self.pending.clear()
        for pid in list(self.attached):
            self.detach(pid)
        if self._reaper is not None:
            self._doomed.put(None)
            self._reaper.join()
            self._reaper = None

    def _reap(self) -> None:
        while (links := self._doomed.get()) is not None:
            try:
                _libbpf.destroy_links(links, "detach Go TLS uprobes")
            except BpfError as exc:  # the link is freed anyway; say it
                log.warning("%s", exc)

    # -- attaching -------------------------------------------------------------

    def _wanted(self, pid: int) -> bool:
        return not self._only or pid in self._only

    def _binary(self, pid: int) -> GoBinary | None:
        """The inspected executable of ``pid``; None if not a Go TLS program or gone."""
        exe = f"/proc/{pid}/exe"
        try:
            st = os.stat(exe)
        except OSError:
            return None  # gone, or a kernel thread
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in _INSPECTED:
            if len(_INSPECTED) >= _INSPECTED_MAX:
                _INSPECTED.clear()
            try:
                binary: GoBinary | None = inspect_binary(exe)
            except GoBinaryError as exc:
                log.debug("pid %d: not traced: %s", pid, exc)
                binary = None
            except OSError:
                return None  # gone while we read it: do not cache
            if binary is not None and (
                set(PROGRAMS) - binary.functions.keys() or proc_entry(binary) is None
            ):
                binary = None  # Go, but no crypto/tls (or unknown layout)
            _INSPECTED[key] = binary
        return _INSPECTED[key]

    def attach(self, pid: int) -> bool:
        """Attach to ``pid`` now; False if it is not a Go TLS program or is gone."""
        if pid in self.attached:
            return True  # never twice
        binary = self._binary(pid)
        if binary is None:
            if os.path.exists(f"/proc/{pid}"):
                self.stats.skipped += 1
            else:
                self.stats.vanished += 1
            return False
        entry = proc_entry(binary)
        assert entry is not None  # _binary checked it
        key = pid.to_bytes(4, "little")
        self._procs.update(key, bytes(entry))
        done = _Attached(binary)
        exe = f"/proc/{pid}/exe"
        try:
            for program, offsets in probe_sites(binary):
                if self.multi:
                    fd = self._obj.program_fd(program)
                    done.multi.append(_uprobe_multi.attach(fd, exe, offsets, pid))
                    continue
                for offset in offsets:
                    link = self._obj.attach_uprobe(program, exe, offset, pid=pid)
                    done.links.append((program, link))
        except BpfError as exc:
            self._undo(pid, done)
            if os.path.exists(f"/proc/{pid}"):
                raise
            log.debug("pid %d exited while being attached: %s", pid, exc)
            self.stats.vanished += 1
            return False
        self.attached[pid] = done
        self.stats.attached += 1
        version = binary.go_version  # "go1.19.8" from the build info, or "1.19"
        log.info(
            "Go TLS: attached to pid %d (%s%s, %s ABI, %d probes)",
            pid,
            "" if version.startswith("go") else "go",
            version,
            binary.abi,
            done.probes,
        )
        return True

    def detach(self, pid: int) -> None:
        """Remove ``pid``'s probes (a no-op when it has none)."""
        done = self.attached.pop(pid, None)
        if done is None:
            return
        self._undo(pid, done)
        self.stats.detached += 1
        log.info("Go TLS: detached from pid %d", pid)

    def _undo(self, pid: int, done: _Attached) -> None:
        self._procs.delete(pid.to_bytes(4, "little"))
        for fd in done.multi:
            os.close(fd)  # all of a program's probes at once, in milliseconds
        done.multi.clear()
        if not done.links:
            return
        for name, link in done.links:
            self._obj.release_link(name, link)
        if self._reaper is None:
            self._reaper = threading.Thread(target=self._reap, name="go-tls-detach", daemon=True)
            self._reaper.start()
        self._doomed.put([link for _, link in done.links])
        done.links.clear()

"""Socket identity from /proc, for the events of the no-BTF variant.

Without BTF the programs cannot read a socket's addresses from the kernel's
structs; they send what the syscall's own arguments say (a connect's or an
accept's peer, a call's own address), and user space completes every event
from ``/proc/net`` and ``/proc/PID/fd``, looked up once per socket and kept
until its CLOSE.  This runs once per event of that variant, so the module is
compiled with the hot ones (``libtrace/compiled.py``), and the answer for a
socket is kept as ready (field, value) pairs (:func:`~libtrace.tracer.events.changes`)
that the compiled decoder stores into the event's slots, so an event costs a
dict lookup and a call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from . import proc
from .events import (
    FAMILY_NAMES,
    L4_NAMES,
    NATIVE_FIELDS,
    Changes,
    EventFlag,
    EventType,
    SocketEvent,
    add_flags,
    changes,
    fill_in_reader,
    format_address,
)

_ADDR_FROM_CALL: Final = int(EventFlag.ADDR_FROM_CALL)
# Enum members as module constants: compiled, ``EventType.CLOSE`` is an attribute
# lookup on the enum class, several hundred instructions under Python 3.11.
_CLOSE: Final = EventType.CLOSE
_PROC_LOOKUP: Final = EventFlag.PROC_LOOKUP


_FLAGS_FIELD: Final = NATIVE_FIELDS.index("flags")


@dataclass(frozen=True, slots=True)
class ProcIdentity:
    """What /proc gave for one socket, ready to fill in events."""

    every: Changes  #: family, l4 and both ends
    local: Changes  #: without the peer: a call's own (unconnected UDP) beats the socket's none


@dataclass(slots=True)
class NoBtfIdentity:
    """Completes events of the no-BTF variant from /proc, cached per socket."""

    #: (pid, fd) → what /proc gave for that socket (None: not found)
    cache: dict[tuple[int, int], ProcIdentity | None] = field(default_factory=dict)
    #: sets fields of an event in place (in compiled code where there is some)
    _fill: Callable[[SocketEvent, Changes], SocketEvent] = field(default_factory=fill_in_reader)
    #: an event's flags (as an int) -> the same with PROC_LOOKUP, ready to fill in
    _flagged: dict[int, Changes] = field(default_factory=dict)

    def complete_all(self, events: list[SocketEvent]) -> list[SocketEvent]:
        """:meth:`complete` each of ``events``, in order; those it drops are left out."""
        out: list[SocketEvent] = []
        for event in events:
            completed = self.complete(event)
            if completed is not None:
                out.append(completed)
        return out

    def complete(self, event: SocketEvent) -> SocketEvent | None:
        """The event with /proc's identity (in place: it is the tracer's own until
        handed over), or None for a socket /proc no longer has and the kernel
        knew nothing of."""
        key = (event.pid, event.fd)
        if key in self.cache:
            found = self.cache[key]
        else:
            found = self.cache[key] = self._lookup(key[0], key[1])
        if event.type is _CLOSE:
            del self.cache[key]  # the fd number may be reused for another socket
        if found is None:
            # Gone before we looked: keep what the kernel knew, if inet.
            return event if event.family else None
        flags = int(event.flags)
        fill = self._fill
        fill(event, found.local if flags & _ADDR_FROM_CALL else found.every)
        flagged = self._flagged.get(flags)
        if flagged is None:
            flagged = ((_FLAGS_FIELD, add_flags(event.flags, _PROC_LOOKUP)),)
            self._flagged[flags] = flagged
        return fill(event, flagged)

    def _lookup(self, pid: int, fd: int) -> ProcIdentity | None:
        found = proc.lookup(pid, fd)
        if found is None:
            return None
        local: dict[str, object] = {
            "family": FAMILY_NAMES[found.family],
            "l4": L4_NAMES[found.l4],
            "laddr": format_address(found.family, found.laddr),
            "lport": found.lport,
        }
        peer: dict[str, object] = {
            "raddr": format_address(found.family, found.raddr),
            "rport": found.rport,
        }
        every = changes({**local, **peer} if found.rport else local)
        return ProcIdentity(every, changes(local))

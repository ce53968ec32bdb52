"""Typed events, and their decoding from the bytes the BPF programs output.

The raw layout (:class:`RawEvent` for ``struct lt_event``, the enums and flags,
the header's constants) is generated from ``libtrace/bpf/socket_trace.h`` into
``_layout.py`` (see ``libtrace.bpf.layout``); :func:`decode` turns one ring- or
perf-buffer record into a frozen :class:`SocketEvent`, the public typed form.
"""

from __future__ import annotations

import base64
import ctypes
import functools
import ipaddress
import operator
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from types import ModuleType
from typing import Any, Final, TypeVar, cast

from .. import native
from ..errors import LibtraceError
from ._layout import (
    DEFAULT_PAYLOAD_CAP,
    MAX_FILTER,
    MAX_INFLIGHT,
    MAX_PAYLOAD,
    MAX_PAYLOAD_PERFBUF,
    SCRATCH_SLOTS,
    Counter,
    Direction,
    EventFlag,
    EventType,
    GoAbi,
    RawArgs,
    RawConfig,
    RawConn,
    RawConnKey,
    RawEvent,
    RawGoProc,
    Syscall,
)

__all__ = [
    "DEFAULT_PAYLOAD_CAP", "FAMILY_NAMES", "HEADER_SIZE", "L4_NAMES", "MAX_FILTER",
    "MAX_INFLIGHT", "MAX_PAYLOAD", "MAX_PAYLOAD_PERFBUF", "NATIVE_FIELDS", "PROCESS_EVENTS",
    "SCRATCH_SLOTS", "Counter", "DecodeError", "Direction", "EventFlag", "EventType", "GoAbi",
    "RawArgs", "RawConfig", "RawConn", "RawConnKey", "RawEvent", "RawGoProc", "SocketEvent",
    "Syscall", "add_flags", "decode", "decode_batch", "decode_python", "format_address",
    "native_decoder", "with_changes",
]  # fmt: skip


#: Bytes of ``struct lt_event`` before a data event's payload.
HEADER_SIZE = ctypes.sizeof(RawEvent)
L4_NAMES: dict[int, str] = {socket.IPPROTO_TCP: "tcp", socket.IPPROTO_UDP: "udp"}
FAMILY_NAMES: dict[int, str] = {int(socket.AF_INET): "ipv4", int(socket.AF_INET6): "ipv6"}


class DecodeError(LibtraceError):
    """A buffer record is too short for the event it claims to be."""


def format_address(family: int, raw: bytes) -> str:
    """Text form of a 16-byte address slot (IPv4 uses the first 4 bytes)."""
    if family == socket.AF_INET:
        return str(ipaddress.IPv4Address(raw[:4]))
    if family == socket.AF_INET6:
        return str(ipaddress.IPv6Address(raw[:16]))
    return ""


#: EventFlag.TLS as a plain int, for a test without IntFlag's Python-level ``&``.
TLS_BIT: Final = int(EventFlag.TLS)


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketEvent:
    """One event from the socket tracer.

    Data events carry ``captured`` bytes of payload out of the ``size`` bytes
    the syscall moved for this chunk, starting at byte ``offset`` of the
    socket's stream in ``direction``.  Connection events (connect, accept,
    close) carry no payload.
    """

    type: EventType
    pid: int
    tid: int
    comm: str
    fd: int
    direction: Direction
    syscall: Syscall
    l4: str  #: "tcp" or "udp" ("" when unknown)
    family: str  #: "ipv4" or "ipv6" ("" when unknown)
    laddr: str
    lport: int
    raddr: str
    rport: int
    ts_ns: int  #: CLOCK_MONOTONIC (bpf_ktime_get_ns) nanoseconds
    offset: int
    size: int
    cgroup_id: int
    flags: EventFlag
    data: bytes = field(repr=False, default=b"")

    @property
    def captured(self) -> int:
        return len(self.data)

    @property
    def truncated(self) -> bool:
        """True when the payload cap cut this chunk short."""
        return len(self.data) < self.size

    @property
    def connection(self) -> tuple[int, int]:
        """The key of this event's socket: (pid, fd)."""
        return (self.pid, self.fd)

    @property
    def tls(self) -> bool:
        """True for TLS plaintext (Go uprobes); its stream is apart from the socket's."""
        # int's own ``&``: IntFlag's is a Python-level method that builds a
        # new flag, a tenth of a record pipeline's time per event.
        return int.__and__(self.flags, TLS_BIT) != 0

    def to_json(self) -> dict[str, Any]:
        """The ``libtrace trace --json`` form of this event."""
        out: dict[str, Any] = {
            "type": self.type.name.lower(),
            "pid": self.pid,
            "tid": self.tid,
            "comm": self.comm,
            "fd": self.fd,
            "l4": self.l4,
            "family": self.family,
            "laddr": self.laddr,
            "lport": self.lport,
            "raddr": self.raddr,
            "rport": self.rport,
            "ts_ns": self.ts_ns,
            "cgroup_id": self.cgroup_id,
            "syscall": self.syscall.name.lower(),
            "flags": [str(flag.name).lower() for flag in EventFlag if flag in self.flags],
            "tls": self.tls,
        }
        if self.type is EventType.DATA:
            out["direction"] = self.direction.name.lower()
            out["offset"] = self.offset
            out["size"] = self.size
            out["captured"] = self.captured
            out["data_b64"] = base64.b64encode(self.data).decode("ascii")
        return out


_INT_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}


def _struct_of(layout: type[ctypes.Structure]) -> struct.Struct:
    """The struct module's reading of a ctypes structure: arrays as bytes, padding skipped."""
    fmt, end = "<", 0
    for name, ctype, *_ in layout._fields_:
        offset = getattr(layout, name).offset
        fmt += "x" * (offset - end)
        size = ctypes.sizeof(ctype)
        if issubclass(ctype, ctypes.Array):
            fmt += f"{size}s"
        else:  # the fixed-width integer of that size (ctypes' own codes are native-sized)
            signed = cast("ctypes._SimpleCData[int]", ctype(-1)).value == -1
            fmt += _INT_CODES[size] if signed else _INT_CODES[size].upper()
        end = offset + ctypes.sizeof(ctype)
    return struct.Struct(fmt + "x" * (ctypes.sizeof(layout) - end))


_HEADER = _struct_of(RawEvent)
_unpack_header = _HEADER.unpack_from
_POSITION = {name: i for i, (name, *_) in enumerate(RawEvent._fields_)}
#: The header fields decode_python uses, picked by name (not by position in the
#: struct, which the header may change) in one C call.
_pick = operator.itemgetter(*(_POSITION[name] for name in (
    "type", "pid", "tid", "comm", "fd", "direction", "syscall", "l4", "family", "laddr", "lport",
    "raddr", "rport", "ts_ns", "offset", "size", "cgroup_id", "flags", "captured",
)))  # fmt: skip

# decode() runs once per event on the drain path, so it avoids the costly
# generic paths: enum members come from lookup tables, repeated values (comm,
# flags, addresses) from caches, and events are built by setting their slots
# directly instead of through the frozen dataclass __init__ (which validates
# nothing here and costs half of the decode time).
_EVENT_TYPES = {member.value: member for member in EventType}
_DIRECTIONS = (Direction.EGRESS, Direction.INGRESS)
_SYSCALLS = {member.value: member for member in Syscall}
_FIELDS = tuple(f.name for f in fields(SocketEvent))
_SETTERS = tuple(getattr(SocketEvent, name).__set__ for name in _FIELDS)
_new_event = object.__new__


@functools.lru_cache(maxsize=4096)
def _address(family: int, raw: bytes) -> str:
    return format_address(family, raw)


@functools.lru_cache(maxsize=1024)
def _comm(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


@functools.lru_cache(maxsize=256)
def _flags(value: int) -> EventFlag:
    return EventFlag(value)


def _unrolled_builder() -> Callable[[tuple[object, ...]], SocketEvent]:
    """A function that sets each slot of a new event from a tuple, one line per field.

    It runs once per event: the frozen dataclass's ``__init__`` (an
    ``object.__setattr__`` per field) or a loop over the slot setters costs
    about twice as much as this straight-line code, which is generated like
    the dataclass's own methods so that it follows the fields.
    """
    names = [f"v{i}" for i in range(len(_FIELDS))]
    body = "".join(f"    s{i}(event, {name})\n" for i, name in enumerate(names))
    source = (
        f"def build(values):\n    {', '.join(names)}, = values\n"
        f"    event = new(cls)\n{body}    return event\n"
    )
    scope: dict[str, Any] = {"new": _new_event, "cls": SocketEvent}
    scope.update((f"s{i}", setter) for i, setter in enumerate(_SETTERS))
    exec(source, scope)  # our own generated text, as dataclasses does
    return cast(Callable[[tuple[object, ...]], SocketEvent], scope["build"])


_build = _unrolled_builder()


@functools.lru_cache(maxsize=256)
def add_flags(flags: EventFlag, extra: EventFlag) -> EventFlag:
    """``flags | extra``, cached on both: IntFlag's own operators cost about a
    microsecond each, and the tracer flags events one by one (a hit is a C
    call, with no Python frame)."""
    return _flags(int(flags) | int(extra))


#: Fields of an event with the values to give them, ready for :func:`fill_in_reader`'s
#: function: (index in :data:`NATIVE_FIELDS`, value) pairs.
Changes = tuple[tuple[int, object], ...]


def changes(values: dict[str, object]) -> Changes:
    """``values`` (field name → value) made ready for :func:`fill_in_reader`'s
    function: each field's index looked up once, for changes that many events take."""
    return tuple((NATIVE_FIELDS.index(name), value) for name, value in values.items())


def fill_in_python(event: SocketEvent, ready: Changes) -> SocketEvent:
    """Set fields of an event in place and return it: only for one that nobody
    else holds yet (the tracer completing what it just decoded), where a copy
    (:func:`with_changes`) would cost several times as much per event."""
    for index, value in ready:
        _NATIVE_SETTERS[index](event, value)
    return event


def fill_in_reader() -> Callable[[SocketEvent, Changes], SocketEvent]:
    """What completes an event in place (:func:`fill_in_python`): the compiled
    decoder's ``fill_in``, which stores into the slots (each slot descriptor's
    ``__set__`` is a call with an argument tuple), else the Python one."""
    return _compiled_or("fill_in", fill_in_python)


def with_changes(event: SocketEvent, changes: dict[str, object]) -> SocketEvent:
    """A copy of ``event`` with some fields replaced (``dataclasses.replace``, faster)."""
    return _build(tuple(changes.get(name, getattr(event, name)) for name in _FIELDS))


#: Event types the tracer hands to its process watcher, not to the caller.
PROCESS_EVENTS = frozenset({EventType.EXEC, EventType.EXIT})
#: SocketEvent's fields in the order _ringdecode.c's ``enum field`` takes their slots.
NATIVE_FIELDS = (
    "type", "pid", "tid", "comm", "fd", "direction", "syscall", "l4", "family", "laddr",
    "lport", "raddr", "rport", "ts_ns", "offset", "size", "cgroup_id", "flags", "data",
)  # fmt: skip
_NATIVE_SLOTS = tuple(getattr(SocketEvent, name) for name in NATIVE_FIELDS)
_NATIVE_SETTERS = tuple(slot.__set__ for slot in _NATIVE_SLOTS)


@functools.cache
def native_decoder() -> ModuleType | None:
    """The compiled decoder (``_ringdecode``), configured with this module's
    class, tables and caches; None where there is none (see libtrace/native.py)."""
    module = native.ringdecode()
    if module is not None:
        module.configure(
            SocketEvent, _NATIVE_SLOTS,
            _EVENT_TYPES, _DIRECTIONS, _SYSCALLS, Syscall.UNKNOWN, L4_NAMES, FAMILY_NAMES, "",
            _address, _comm, _flags, PROCESS_EVENTS,
        )  # fmt: skip
    return module


_F = TypeVar("_F", bound=Callable[..., Any])


def _compiled_or(name: str, python: _F) -> _F:
    """The compiled decoder's function ``name`` where there is one, else its
    Python twin ``python`` (tests/tracer/test_native.py holds each pair to the
    same results)."""
    compiled = native_decoder()
    return python if compiled is None else cast(_F, getattr(compiled, name))


#: The fields of an event that the live record pipeline reads (of a data event,
#: all it needs), in the order of :data:`DataFields` (and of ``data_fields`` in
#: _ringdecode.c).
DATA_FIELDS = ("type", "ts_ns", "l4", "raddr", "rport", "flags", "pid", "fd", "data",
               "direction", "offset", "size")  # fmt: skip
#: ``(type, ts_ns, l4, raddr, rport, flags, pid, fd, data, direction, offset,
#: size)``; the flags as the int they are.
DataFields = tuple[EventType, int, str, str, int, int, int, int, bytes, Direction, int, int]


_DATA_FIELDS_GETTER = operator.attrgetter(*DATA_FIELDS)


def data_fields_python(event: SocketEvent) -> DataFields:
    """The :data:`DATA_FIELDS` of ``event``, read one by one."""
    return cast(DataFields, _DATA_FIELDS_GETTER(event))


def data_fields_reader() -> Callable[[SocketEvent], DataFields]:
    """What reads the :data:`DATA_FIELDS` of an event: the compiled decoder's
    ``data_fields``, which takes them from their slots in one call (a compiled
    caller reads each attribute of this uncompiled class through the generic
    lookup, a tenth of the record pipeline's time per event), else
    :func:`data_fields_python`."""
    return _compiled_or("data_fields", data_fields_python)


_TIME_GETTER: Final[Callable[[SocketEvent], int]] = operator.attrgetter("ts_ns")
_PAYLOAD_GETTER = operator.attrgetter("data")


def time_reader() -> Callable[[SocketEvent], int]:
    """What reads an event's ``ts_ns``, the time order's sort key: the compiled
    decoder's ``ts_ns`` (from the slot), else :func:`operator.attrgetter`'s
    generic lookup, which cost about as much as the rest of ordering an event."""
    return _compiled_or("ts_ns", _TIME_GETTER)


def payload_bytes_python(events: list[SocketEvent]) -> int:
    """The payload bytes ``events`` carry, read one by one."""
    return sum(map(len, map(_PAYLOAD_GETTER, events)))


def payload_bytes_reader() -> Callable[[list[SocketEvent]], int]:
    """What sums the payload bytes of a list of events (the tracer's ``bytes``
    counter): the compiled decoder's ``payload_bytes``, one call a batch, else
    :func:`payload_bytes_python`."""
    return _compiled_or("payload_bytes", payload_bytes_python)


def decode(record: bytes | memoryview) -> SocketEvent:
    """Decode one buffer record into a :class:`SocketEvent`.

    Raises:
        DecodeError: the record is shorter than its header says, or names an
            event type this version does not know.
    """
    compiled = native_decoder()
    if compiled is not None:
        event: SocketEvent | None = compiled.decode(record)
        if event is not None:
            return event
    return decode_python(record)  # also for the error's message


def decode_batch(record: bytes) -> list[SocketEvent]:
    """Decode one ring buffer record: an event, or a CPU's batch of them back to
    back, each starting 8-byte aligned (``struct lt_batch`` in socket_trace.bpf.c).

    Raises:
        DecodeError: as :func:`decode`, for the first malformed event (the
            events after it cannot be found).
    """
    view = memoryview(record)
    out = []
    at = 0
    while len(view) - at >= HEADER_SIZE:
        event = decode(view[at:])
        out.append(event)
        at += (HEADER_SIZE + event.captured + 7) & ~7
    if not out:
        decode(record)  # raises: too short for one event
    return out


def decode_python(record: bytes | memoryview) -> SocketEvent:
    """:func:`decode` in Python only (the reference the compiled decoder is tested against)."""
    if len(record) < HEADER_SIZE:
        raise DecodeError(f"event record of {len(record)} bytes, header needs {HEADER_SIZE}")
    (etype, pid, tid, comm, fd, direction, syscall, l4, family, laddr, lport, raddr, rport,
     ts_ns, offset, size, cgroup_id, flags, captured) = _pick(_unpack_header(record))
    end = HEADER_SIZE + captured
    if len(record) < end:
        raise DecodeError(f"event record of {len(record)} bytes, payload needs {end}")
    event_type = _EVENT_TYPES.get(etype)
    if event_type is None:
        raise DecodeError(f"unknown event type {etype}")
    # Perf samples may carry padding past the payload: cut at `captured`.
    # The order is that of SocketEvent's fields (checked by the tests).
    return _build((
        event_type, pid, tid, _comm(comm), fd, _DIRECTIONS[direction & 1],
        _SYSCALLS.get(syscall, Syscall.UNKNOWN), L4_NAMES.get(l4, ""),
        FAMILY_NAMES.get(family, ""), _address(family, laddr), lport, _address(family, raddr),
        rport, ts_ns, offset, size, cgroup_id, _flags(flags), bytes(record[HEADER_SIZE:end]),
    ))

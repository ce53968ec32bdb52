"""The compiled decoder (_ringdecode.c) against the Python one it compiles.

Records come from hypothesis (every header field, any payload), and ring
memory is laid out here byte for byte as the kernel lays it out (8-byte record
headers with BUSY/DISCARD bits, the data area mapped twice in a row), so the
walk's edge cases are tried without a kernel; the real ring with a real
producer is tests/tracer/test_ringbuf_reader.py's.
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass, fields

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libtrace import native
from libtrace.tracer import events, ringbuf
from libtrace.tracer.events import (
    DATA_FIELDS,
    HEADER_SIZE,
    NATIVE_FIELDS,
    EventFlag,
    EventType,
    RawEvent,
    SocketEvent,
    changes,
    data_fields_python,
    data_fields_reader,
    decode_python,
    fill_in_python,
    fill_in_reader,
    native_decoder,
    payload_bytes_python,
    payload_bytes_reader,
    time_reader,
)

pytestmark = pytest.mark.skipif(
    native_decoder() is None, reason="no C compiler or Python headers for the compiled decoder"
)

RING = 4096  # data bytes of the synthetic ring (a power of two)


def _record(raw: RawEvent, payload: bytes) -> bytes:
    return bytes(raw) + payload


@st.composite
def records(draw: st.DrawFn) -> bytes:
    raw = RawEvent()
    for name, ctype in RawEvent._fields_:
        if name in ("laddr", "raddr"):
            getattr(raw, name)[:] = draw(st.binary(min_size=16, max_size=16))
        elif name == "comm":
            raw.comm = draw(st.binary(max_size=15).filter(lambda b: b"\0" not in b))
        elif name == "type":
            raw.type = draw(st.sampled_from([*EventType, 0, 7, 200]))
        elif name == "family":
            raw.family = draw(st.sampled_from([2, 10, 0, 1, 300]))
        elif name == "l4":
            raw.l4 = draw(st.sampled_from([6, 17, 0, 1, 999]))
        elif name == "flags":
            raw.flags = draw(st.integers(0, 0xFFFF))
        else:
            bits = ctypes.sizeof(ctype) * 8
            if ctype is ctypes.c_int32:
                low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
            else:
                low, high = 0, (1 << bits) - 1
            setattr(raw, name, draw(st.integers(low, high)))
    payload = draw(st.binary(max_size=64))
    raw.captured = draw(st.sampled_from([len(payload), len(payload) + 1, 0]))
    tail = draw(st.binary(max_size=8))  # perf samples may carry padding past the payload
    return _record(raw, payload) + tail


def test_the_slots_it_fills_are_the_events_fields() -> None:
    assert sorted(NATIVE_FIELDS) == sorted(f.name for f in fields(SocketEvent))


@given(records())
def test_compiled_and_python_decode_agree(record: bytes) -> None:
    compiled = native_decoder()
    assert compiled is not None
    try:
        expected: SocketEvent | None = decode_python(record)
    except events.DecodeError:
        expected = None
    got = compiled.decode(record)
    assert got == expected
    if got is not None:
        assert type(got) is SocketEvent and got.data == expected.data  # type: ignore[union-attr]


@given(records())
def test_its_data_fields_are_the_events_own(record: bytes) -> None:
    """The record pipeline's one-call read of an event's fields gives what the
    attributes hold, in DATA_FIELDS order: for the event class from its slots,
    for a subclass by attribute."""
    compiled = native_decoder()
    assert compiled is not None
    event = compiled.decode(record)
    if event is None:
        return
    expected = tuple(getattr(event, name) for name in DATA_FIELDS)
    assert compiled.data_fields(event) == expected == data_fields_python(event)
    assert data_fields_reader() is compiled.data_fields

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Sub(SocketEvent):
        pass

    other = Sub(**{f.name: getattr(event, f.name) for f in fields(SocketEvent)})
    assert compiled.data_fields(other) == expected
    with pytest.raises(AttributeError):
        compiled.data_fields(object())


@given(st.lists(records(), max_size=8))
def test_its_time_key_and_payload_sum_are_the_events_own(batch: list[bytes]) -> None:
    """The time order's key and the ``bytes`` counter's sum read the slots; a
    subclass (or a stand-in) is read by attribute, as by the Python readers."""
    compiled = native_decoder()
    assert compiled is not None
    decoded = [compiled.decode(record) for record in batch]
    got = [event for event in decoded if event is not None]

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Sub(SocketEvent):
        pass

    mixed = got + [Sub(**{f.name: getattr(e, f.name) for f in fields(SocketEvent)}) for e in got]
    assert [compiled.ts_ns(e) for e in mixed] == [e.ts_ns for e in mixed]
    assert compiled.payload_bytes(mixed) == payload_bytes_python(mixed) == 2 * sum(
        len(e.data) for e in got)  # fmt: skip
    assert time_reader() is compiled.ts_ns and payload_bytes_reader() is compiled.payload_bytes
    with pytest.raises(AttributeError):
        compiled.ts_ns(object())
    with pytest.raises(TypeError):
        compiled.payload_bytes(tuple(got))


@given(records())
def test_its_fill_in_sets_what_the_python_one_sets(record: bytes) -> None:
    """The no-BTF completion's in-place fill: the slots for the event class, the
    slot descriptors for a subclass, and the same event as the Python one makes."""
    compiled = native_decoder()
    assert compiled is not None
    event = compiled.decode(record)
    if event is None:
        return
    twin = decode_python(record)
    ready = changes({"laddr": "10.1.2.3", "lport": 4242, "l4": "tcp",
                     "flags": EventFlag.PROC_LOOKUP})  # fmt: skip
    assert compiled.fill_in(event, ready) is event
    assert fill_in_python(twin, ready) is twin
    assert event == twin
    assert (event.laddr, event.lport, event.l4, event.flags) == (
        "10.1.2.3", 4242, "tcp", EventFlag.PROC_LOOKUP)  # fmt: skip

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Sub(SocketEvent):
        pass

    other = Sub(**{f.name: getattr(twin, f.name) for f in fields(SocketEvent)})
    assert compiled.fill_in(other, changes({"rport": 7})).rport == 7
    with pytest.raises(IndexError):
        compiled.fill_in(event, ((len(NATIVE_FIELDS), 1),))
    with pytest.raises(TypeError):
        compiled.fill_in(event, ((1,),))
    assert fill_in_reader() is compiled.fill_in


def test_short_records_are_no_events() -> None:
    compiled = native_decoder()
    assert compiled is not None
    assert compiled.decode(b"") is None
    assert compiled.decode(bytes(HEADER_SIZE - 1)) is None
    with pytest.raises(events.DecodeError, match="header needs"):
        events.decode(bytes(HEADER_SIZE - 1))



def test_repeated_values_are_shared_and_colliding_ones_never_confused() -> None:
    """The decoder's caches (ints, addresses, comms) give a value that repeats
    as one object, and the right value whatever shares its cache slot: 5 000
    distinct pids, ports and cgroup ids (more than any cache holds), twice."""
    compiled = native_decoder()
    assert compiled is not None

    def record(n: int) -> bytes:
        raw = RawEvent(type=EventType.DATA, pid=100_000 + n, tid=200_000 + 7 * n, fd=3,
                       lport=1024 + n, rport=65535 - n, cgroup_id=(1 << 40) + 13 * n,
                       family=2, l4=6)  # fmt: skip
        raw.raddr[:4] = bytes([10, n >> 8 & 255, n & 255, 1])
        raw.comm = b"worker-%d" % n
        return _record(raw, b"")

    first = [compiled.decode(record(n)) for n in range(5000)]
    again = [compiled.decode(record(n)) for n in range(5000)]
    for n, (one, two) in enumerate(zip(first, again, strict=True)):
        assert one == two == decode_python(record(n))
        assert (one.pid, one.lport, one.rport) == (100_000 + n, 1024 + n, 65535 - n)
    last = compiled.decode(record(4999))
    assert last.pid is again[-1].pid and last.cgroup_id is again[-1].cgroup_id
    assert last.raddr is again[-1].raddr and last.comm is again[-1].comm

class SyntheticRing:
    """Ring memory as the kernel lays it out: consumer page, producer position,
    data twice in a row (a record that wraps reads on into the copy)."""

    def __init__(self, start: int = 0) -> None:
        self.consumer = bytearray(4096)
        self.producer = bytearray(8)
        self.data = bytearray(2 * RING)
        struct.pack_into("<Q", self.consumer, 0, start)
        struct.pack_into("<Q", self.producer, 0, start)

    @property
    def consumer_pos(self) -> int:
        return int(struct.unpack_from("<Q", self.consumer)[0])

    def put(self, record: bytes, *, busy: bool = False, discard: bool = False) -> None:
        position = struct.unpack_from("<Q", self.producer)[0]
        word = len(record) | (ringbuf.BUSY_BIT if busy else 0) | (
            ringbuf.DISCARD_BIT if discard else 0)  # fmt: skip
        blob = struct.pack("<II", word, 0) + record
        for i, byte in enumerate(blob):
            at = (position + i) & (RING - 1)
            self.data[at] = self.data[at + RING] = byte
        struct.pack_into("<Q", self.producer, 0, position + ((len(blob) + 7) & ~7))

    def consume(self, limit: int = 0) -> tuple[int, int, list[SocketEvent], list[SocketEvent]]:
        compiled = native_decoder()
        assert compiled is not None
        got: list[SocketEvent] = []
        process: list[SocketEvent] = []
        count, errors = compiled.consume(
            self.consumer, self.producer, self.data, RING - 1, limit, got, process
        )
        return count, errors, got, process


def _event(type_: EventType, fd: int, payload: bytes = b"") -> bytes:
    raw = RawEvent(type=type_, fd=fd, pid=1, tid=1, captured=len(payload), size=len(payload),
                   family=2, l4=6)  # fmt: skip
    return _record(raw, payload)


def test_the_walk_splits_process_events_skips_discarded_and_stops_at_busy() -> None:
    ring = SyntheticRing()
    ring.put(_event(EventType.DATA, 3, b"hello"))
    ring.put(_event(EventType.EXEC, -1))
    ring.put(_event(EventType.DATA, 4, b"gone"), discard=True)
    ring.put(b"short")  # not an event: consumed and counted
    ring.put(_event(EventType.CLOSE, 3))
    busy_at = struct.unpack_from("<Q", ring.producer)[0]
    ring.put(_event(EventType.DATA, 5, b"later"), busy=True)
    count, errors, got, process = ring.consume()
    assert (count, errors) == (4, 1)
    assert [(e.type, e.fd, e.data) for e in got] == [
        (EventType.DATA, 3, b"hello"), (EventType.CLOSE, 3, b"")]  # fmt: skip
    assert [e.type for e in process] == [EventType.EXEC]
    assert ring.consumer_pos == busy_at  # resumes at the record not yet committed


def test_the_walk_reads_records_across_the_end_and_honours_the_limit() -> None:
    ring = SyntheticRing(start=RING - 40)  # the first record crosses the end
    payloads = [bytes([i]) * (i * 7) for i in range(1, 12)]
    for i, payload in enumerate(payloads):
        ring.put(_event(EventType.DATA, i, payload))
    first = ring.consume(limit=4)
    rest = ring.consume()
    assert first[0] == 4 and rest[0] == len(payloads) - 4
    assert [e.data for e in first[2] + rest[2]] == payloads
    assert ring.consumer_pos == struct.unpack_from("<Q", ring.producer)[0]


def test_the_pure_python_path_can_be_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.PURE_PYTHON_ENV, "1")
    native.load.cache_clear()
    try:
        assert native.ringdecode() is None
        events.native_decoder.cache_clear()
        assert events.data_fields_reader() is data_fields_python
        assert events.payload_bytes_reader() is payload_bytes_python
        assert events.fill_in_reader() is fill_in_python
        event = decode_python(_event(EventType.DATA, 3, b"xy"))
        assert events.time_reader()(event) == event.ts_ns
    finally:
        events.native_decoder.cache_clear()
        monkeypatch.delenv(native.PURE_PYTHON_ENV)
        native.load.cache_clear()
    assert native.ringdecode() is not None


def test_its_events_are_left_out_of_the_cyclic_collector() -> None:
    """They hold only atomic values, so they can be in no cycle; the collector
    visiting the many held in the time order cost more than decoding them."""
    import gc

    compiled = native_decoder()
    assert compiled is not None
    event = compiled.decode(_event(EventType.DATA, 3, b"x"))
    assert event is not None and not gc.is_tracked(event)
    assert event == decode_python(_event(EventType.DATA, 3, b"x"))


PAGE = 4096


class SyntheticPerfRing:
    """A perf ring as the kernel maps it: a header page (data_head at 1024,
    data_tail at 1032), then the data, mapped once (a record may wrap)."""

    def __init__(self, start: int = 0) -> None:
        self.memory = ctypes.create_string_buffer(PAGE + RING)
        self.head = start
        struct.pack_into("<QQ", self.memory, 1024, start, start)

    @property
    def tail(self) -> int:
        return int(struct.unpack_from("<Q", self.memory, 1032)[0])

    def _put(self, kind: int, body: bytes) -> None:
        record = struct.pack("<IHH", kind, 0, 8 + len(body)) + body
        assert len(record) % 8 == 0
        for i, byte in enumerate(record):
            self.memory[PAGE + ((self.head + i) & (RING - 1))] = byte
        self.head += len(record)
        struct.pack_into("<Q", self.memory, 1024, self.head)

    def sample(self, event: bytes) -> None:
        raw = struct.pack("<I", len(event)) + event
        self._put(9, raw + bytes(-len(raw) % 8))  # PERF_RECORD_SAMPLE, padded as the kernel does

    def lost(self, count: int) -> None:
        self._put(2, struct.pack("<QQ", 77, count))  # PERF_RECORD_LOST: id, lost

    def consume(self, limit: int = 0) -> tuple[int, int, int, list[SocketEvent]]:
        compiled = native_decoder()
        assert compiled is not None
        got: list[SocketEvent] = []
        process: list[SocketEvent] = []
        count, errors, lost = compiled.consume_perf(
            ctypes.addressof(self.memory), RING, PAGE, limit, got, process
        )
        return count, errors, lost, got + process


def test_the_perf_walk_reads_wrapped_samples_whole_and_sums_the_losses() -> None:
    ring = SyntheticPerfRing(start=RING - 48)  # the first sample crosses the end
    payloads = [bytes([i]) * (i * 5) for i in range(1, 9)]
    ring.sample(_event(EventType.DATA, 0, payloads[0]))
    ring.lost(3)
    for i, payload in enumerate(payloads[1:], 1):
        ring.sample(_event(EventType.DATA, i, payload))
    ring.lost(2)
    first = ring.consume(limit=3)
    rest = ring.consume()
    assert (first[0], first[1]) == (3, 0) and (rest[0], rest[1]) == (len(payloads) - 3, 0)
    assert first[2] + rest[2] == 5
    assert [e.data for e in first[3] + rest[3]] == payloads
    assert ring.tail == ring.head

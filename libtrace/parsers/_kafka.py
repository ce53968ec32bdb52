"""Kafka's binary protocol over TCP: request/response headers v0-v2, topics, error codes.

Theory of operation: each message is an INT32 size and that many bytes.  A
request header holds api_key, api_version, correlation_id and client_id (an
INT16-prefixed string even in header v2), plus tagged fields from the API's
first "flexible" version on (:data:`FIRST_FLEXIBLE`), where the body also
switches to compact strings/arrays (unsigned varint lengths + 1) and tagged
fields.  A response header is only the correlation id — plus tagged fields
for flexible versions, except ApiVersions, whose response header stays v0 so
that any client can read it.  A response cannot be read without its request:
the parser is connection-level and remembers (api_key, api_version) per
correlation id, bounded by :data:`MAX_INFLIGHT`.

From request bodies the topic names of Produce, Fetch, Metadata,
CreateTopics and DeleteTopics are read (topic ids where a version uses them);
from response bodies the error code where the body starts with one (after
the throttle time where a version has it) or, for Produce, Fetch,
ListOffsets, OffsetCommit, CreateTopics and DeleteTopics, the first
per-topic/partition one.  Bodies are read from at most
:data:`MAX_PREFIX_BYTES` (the rest — record batches — is skipped), so a part
that does not fit leaves the fields found so far and an error, never a crash.
Pairing is by correlation id; Produce with ``acks=0`` expects no response.
"""

from __future__ import annotations

import enum
import struct
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import NamedTuple

from mypy_extensions import mypyc_attr

from ..frozen import hand_init
from ._base import Side, StreamParser, Transport
from ._cursor import Cursor
from ._enums import open_enum
from ._errors import LimitExceededError, MalformedError, TruncatedError
from ._events import REQUEST, RESPONSE, Direction, Message, Status, clip
from ._limits import MAX_ARGS_KEPT, MAX_PENDING_REQUESTS
from ._spec import PRINTABLE, Match, ProtocolSpec

#: Bytes of a message buffered and read; the rest (record batches of
#: Produce requests and Fetch responses) is skipped.  Enough for the topic
#: list of any realistic request.
MAX_PREFIX_BYTES = 256 * 1024
#: A size field beyond this is corrupt (the broker's socket.request.max.bytes
#: default is 100 MiB).
MAX_MESSAGE_SIZE = 100 * 1024 * 1024
#: Requests whose response is awaited, per connection (correlation id -> API).
MAX_INFLIGHT = MAX_PENDING_REQUESTS
#: Highest API version accepted when hunting for a message start.
MAX_API_VERSION = 30
#: A header has at least api_key, api_version, correlation_id, client_id length.
MIN_REQUEST_BYTES = 10


@open_enum
class ApiKey(enum.IntEnum):
    """Kafka API keys (names as in the protocol guide)."""

    Produce = 0
    Fetch = 1
    ListOffsets = 2
    Metadata = 3
    LeaderAndIsr = 4
    StopReplica = 5
    UpdateMetadata = 6
    ControlledShutdown = 7
    OffsetCommit = 8
    OffsetFetch = 9
    FindCoordinator = 10
    JoinGroup = 11
    Heartbeat = 12
    LeaveGroup = 13
    SyncGroup = 14
    DescribeGroups = 15
    ListGroups = 16
    SaslHandshake = 17
    ApiVersions = 18
    CreateTopics = 19
    DeleteTopics = 20
    DeleteRecords = 21
    InitProducerId = 22
    OffsetForLeaderEpoch = 23
    AddPartitionsToTxn = 24
    AddOffsetsToTxn = 25
    EndTxn = 26
    WriteTxnMarkers = 27
    TxnOffsetCommit = 28
    DescribeAcls = 29
    CreateAcls = 30
    DeleteAcls = 31
    DescribeConfigs = 32
    AlterConfigs = 33
    AlterReplicaLogDirs = 34
    DescribeLogDirs = 35
    SaslAuthenticate = 36
    CreatePartitions = 37
    CreateDelegationToken = 38
    RenewDelegationToken = 39
    ExpireDelegationToken = 40
    DescribeDelegationToken = 41
    DeleteGroups = 42
    ElectLeaders = 43
    IncrementalAlterConfigs = 44
    AlterPartitionReassignments = 45
    ListPartitionReassignments = 46
    OffsetDelete = 47
    DescribeClientQuotas = 48
    AlterClientQuotas = 49
    DescribeUserScramCredentials = 50
    AlterUserScramCredentials = 51
    DescribeCluster = 60
    DescribeProducers = 61
    DescribeTransactions = 65
    ListTransactions = 66
    ConsumerGroupHeartbeat = 68
    ConsumerGroupDescribe = 69
    DescribeTopicPartitions = 75


#: API key -> first flexible version (``flexibleVersions`` of the message
#: specs); ``None``: never flexible.  Unlisted keys are taken as flexible from
#: version 0 (every API added since KIP-482 is).
FIRST_FLEXIBLE: dict[int, int | None] = {
    0: 9, 1: 12, 2: 6, 3: 9, 4: 4, 5: 2, 6: 6, 7: 3, 8: 8, 9: 6, 10: 3, 11: 6, 12: 4,
    13: 4, 14: 4, 15: 5, 16: 3, 17: None, 18: 3, 19: 5, 20: 4, 21: 2, 22: 2, 23: 4,
    24: 3, 25: 3, 26: 3, 27: 1, 28: 3, 29: 2, 30: 2, 31: 2, 32: 4, 33: 2, 34: 2, 35: 2,
    36: 2, 37: 2, 38: 2, 39: 2, 40: 2, 41: 2, 42: 2, 43: 2, 44: 1, 45: 0, 46: 0, 47: None,
    48: 1, 49: 1, 50: 0, 51: 0,
}
#: Error codes that are the broker's trouble (not leader, unavailable, timeout,
#: storage); every other non-zero code blames the request.
SERVER_ERRORS = frozenset({-1, 5, 6, 7, 8, 9, 13, 14, 15, 16, 19, 20, 51, 56, 57})


def is_flexible(api_key: int, api_version: int) -> bool:
    first = FIRST_FLEXIBLE.get(api_key, 0)
    return first is not None and api_version >= first


class Wire:
    """Kafka's primitive types over a :class:`Cursor`, classic or compact."""

    __slots__ = ("cur", "flexible")

    def __init__(self, cur: Cursor, flexible: bool) -> None:
        self.cur, self.flexible = cur, flexible

    def _length(self, classic: Callable[[], int]) -> int:
        """A string/array/bytes length (-1: null): unsigned varint + 1 when compact."""
        return self.cur.varint() - 1 if self.flexible else classic()

    def string(self) -> str | None:
        n = self._length(self.cur.i16)
        if n < -1:
            raise MalformedError(f"string length {n}")
        return None if n == -1 else clip(self.cur.string(n))

    def skip_bytes(self) -> None:
        n = self._length(self.cur.i32)
        if n < -1:
            raise MalformedError(f"bytes length {n}")
        if n > 0:
            self.cur.skip(n)

    def array(self) -> int:
        """An array's element count; null arrays count 0."""
        n = self._length(self.cur.i32)
        if n < -1:
            raise MalformedError(f"array length {n}")
        return max(n, 0)

    def uuid(self) -> str:
        return str(uuid.UUID(bytes=self.cur.bytes(16)))

    def tags(self) -> None:
        """Tagged fields (flexible versions only)."""
        if self.flexible:
            for _ in range(self.cur.varint()):
                self.cur.varint()
                self.cur.skip(self.cur.varint())


class RequestHeader(NamedTuple):
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    length: int  #: header bytes after the size field


def read_request_header(data: bytes | bytearray, pos: int = 0, end: int | None = None,
                        ) -> RequestHeader:
    """The request header at ``data[pos]`` (after the size).

    Raises:
        TruncatedError, MalformedError: the bytes cannot be a request header.
    """
    cur = Cursor(data, pos, end)
    api_key, version, correlation = cur.i16(), cur.i16(), cur.i32()
    if api_key < 0 or version < 0:
        raise MalformedError(f"api_key {api_key} version {version}")
    wire = Wire(cur, False)
    client_id = wire.string()
    if is_flexible(api_key, version):
        Wire(cur, True).tags()
    return RequestHeader(api_key, version, correlation, client_id, cur.pos - pos)


# -- request bodies: topics ------------------------------------------------------------------
def _produce(w: Wire, v: int, topics: list[str]) -> int:
    if v >= 3:
        w.string()  # transactional id
    acks = w.cur.i16()
    w.cur.i32()  # timeout
    for _ in range(w.array()):
        _keep(topics, w.uuid() if v >= 13 else w.string())
        for _ in range(w.array()):
            w.cur.i32()
            w.skip_bytes()
            w.tags()
        w.tags()
    return acks


def _fetch(w: Wire, v: int, topics: list[str]) -> None:
    cur = w.cur
    cur.skip((4 if v <= 14 else 0) + 8 + (4 if v >= 3 else 0) + (1 if v >= 4 else 0)
             + (8 if v >= 7 else 0))
    partition = 4 + (4 if v >= 9 else 0) + 8 + (4 if v >= 12 else 0) + (
        8 if v >= 5 else 0) + 4
    for _ in range(w.array()):
        _keep(topics, w.uuid() if v >= 13 else w.string())
        for _ in range(w.array()):
            cur.skip(partition)
            w.tags()
        w.tags()


def _metadata(w: Wire, v: int, topics: list[str]) -> None:
    for _ in range(w.array()):
        if v >= 10:
            topic_id, name = w.uuid(), w.string()
            _keep(topics, name if name is not None else topic_id)
        else:
            _keep(topics, w.string())
        w.tags()


def _create_topics(w: Wire, v: int, topics: list[str]) -> None:
    for _ in range(w.array()):
        _keep(topics, w.string())
        w.cur.skip(6)  # num_partitions, replication_factor
        for _ in range(w.array()):  # assignments
            w.cur.i32()
            w.cur.skip(4 * w.array())
            w.tags()
        for _ in range(w.array()):  # configs
            w.string()
            w.string()
            w.tags()
        w.tags()


def _delete_topics(w: Wire, v: int, topics: list[str]) -> None:
    for _ in range(w.array()):
        if v >= 6:
            name, topic_id = w.string(), w.uuid()
            _keep(topics, name if name is not None else topic_id)
            w.tags()
        else:
            _keep(topics, w.string())


def _keep(topics: list[str], name: str | None) -> None:
    if len(topics) < MAX_ARGS_KEPT and name is not None:
        topics.append(name)


_TOPIC_READERS: dict[int, Callable[[Wire, int, list[str]], object]] = {
    ApiKey.Produce: _produce, ApiKey.Fetch: _fetch, ApiKey.Metadata: _metadata,
    ApiKey.CreateTopics: _create_topics, ApiKey.DeleteTopics: _delete_topics,
}


# -- response bodies: error codes ------------------------------------------------------------
def _throttled(since: int) -> Callable[[Wire, int], int | None]:
    """Error code first, after a throttle time from version ``since`` on."""
    def read(w: Wire, v: int) -> int | None:
        if v >= since:
            w.cur.i32()
        return w.cur.i16()
    return read


def _first_partition(throttle_since: int | None, uuid_since: int = 99,
                     ) -> Callable[[Wire, int], int | None]:
    """The error of the first partition of the first topic."""
    def read(w: Wire, v: int) -> int | None:
        if throttle_since is not None and v >= throttle_since:
            w.cur.i32()
        if not w.array():
            return None
        if v >= uuid_since:
            w.uuid()
        else:
            w.string()
        if not w.array():
            return None
        w.cur.i32()
        return w.cur.i16()
    return read


def _fetch_error(w: Wire, v: int) -> int | None:
    if v >= 1:
        w.cur.i32()
    if v >= 7:
        top = w.cur.i16()
        w.cur.i32()
        if top:
            return top
    return _first_partition(None, 13)(w, v)


def _first_topic(throttle_since: int, uuid_since: int) -> Callable[[Wire, int], int | None]:
    """The error of the first topic (CreateTopics, DeleteTopics)."""
    def read(w: Wire, v: int) -> int | None:
        if v >= throttle_since:
            w.cur.i32()
        if not w.array():
            return None
        w.string()
        if v >= uuid_since:
            w.uuid()
        return w.cur.i16()
    return read


def _find_coordinator(w: Wire, v: int) -> int | None:
    if v < 4:
        return _throttled(1)(w, v)
    w.cur.i32()
    if not w.array():
        return None
    w.string()
    w.cur.skip(4)
    w.string()
    w.cur.skip(4)
    return w.cur.i16()


def _describe_groups(w: Wire, v: int) -> int | None:
    if v >= 1:
        w.cur.i32()
    return w.cur.i16() if w.array() else None


_ERROR_READERS: dict[int, Callable[[Wire, int], int | None]] = {
    ApiKey.Produce: _first_partition(None, 13),
    ApiKey.Fetch: _fetch_error,
    ApiKey.ListOffsets: _first_partition(2),
    ApiKey.OffsetCommit: _first_partition(3),
    ApiKey.FindCoordinator: _find_coordinator,
    ApiKey.JoinGroup: _throttled(2),
    ApiKey.Heartbeat: _throttled(1),
    ApiKey.LeaveGroup: _throttled(1),
    ApiKey.SyncGroup: _throttled(1),
    ApiKey.DescribeGroups: _describe_groups,
    ApiKey.ListGroups: _throttled(1),
    ApiKey.SaslHandshake: _throttled(99),
    ApiKey.ApiVersions: _throttled(99),
    ApiKey.CreateTopics: _first_topic(2, 7),
    ApiKey.DeleteTopics: _first_topic(1, 6),
    ApiKey.InitProducerId: _throttled(0),
    ApiKey.AddOffsetsToTxn: _throttled(0),
    ApiKey.EndTxn: _throttled(0),
    ApiKey.SaslAuthenticate: _throttled(99),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaRequest(Message):
    """A Kafka request."""

    @property
    def protocol(self) -> str:
        return "kafka"


    api: ApiKey
    api_version: int
    correlation_id: int
    client_id: str | None = None
    topics: tuple[str, ...] = ()
    #: Produce only: 0 means no response will come
    acks: int | None = None

    def __init__(  # pragma: no cover
        self, *, ts_ns: int, size: int = 0, errors: tuple[str, ...] = (), _parsed: bool = False,
        api: ApiKey, api_version: int, correlation_id: int, client_id: str | None = None,
        topics: tuple[str, ...] = (), acks: int | None = None,
    ) -> None:  # fmt: skip
        # By hand, for speed once compiled: see libtrace/frozen.py.
        self.ts_ns = ts_ns  # type: ignore[misc]
        self.size = size  # type: ignore[misc]
        self.errors = errors  # type: ignore[misc]
        self.api = api  # type: ignore[misc]
        self.api_version = api_version  # type: ignore[misc]
        self.correlation_id = correlation_id  # type: ignore[misc]
        self.client_id = client_id  # type: ignore[misc]
        self.topics = topics  # type: ignore[misc]
        self.acks = acks  # type: ignore[misc]
        self.__post_init__(_parsed)

    @property
    def key(self) -> Hashable:
        return self.correlation_id

    @property
    def expects_response(self) -> bool:
        return not (self.api is ApiKey.Produce and self.acks == 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaResponse(Message):
    """A Kafka response; ``api`` is ``None`` when its request was not seen."""

    @property
    def protocol(self) -> str:
        return "kafka"

    @property
    def direction(self) -> Direction:
        return RESPONSE

    correlation_id: int
    api: ApiKey | None = None
    api_version: int | None = None
    error_code: int | None = None

    def __init__(  # pragma: no cover
        self, *, ts_ns: int, size: int = 0, errors: tuple[str, ...] = (), _parsed: bool = False,
        correlation_id: int, api: ApiKey | None = None, api_version: int | None = None,
        error_code: int | None = None,
    ) -> None:  # fmt: skip
        # By hand, for speed once compiled: see libtrace/frozen.py.
        self.ts_ns = ts_ns  # type: ignore[misc]
        self.size = size  # type: ignore[misc]
        self.errors = errors  # type: ignore[misc]
        self.correlation_id = correlation_id  # type: ignore[misc]
        self.api = api  # type: ignore[misc]
        self.api_version = api_version  # type: ignore[misc]
        self.error_code = error_code  # type: ignore[misc]
        self.__post_init__(_parsed)

    @property
    def key(self) -> Hashable:
        return self.correlation_id

    @property
    def outcome(self) -> Status:
        if not self.error_code:
            return Status.OK
        return Status.SERVER_ERROR if self.error_code in SERVER_ERRORS else Status.CLIENT_ERROR


hand_init(KafkaRequest, KafkaResponse)


def _cut(exc: Exception, complete: bool) -> str:
    where = "" if complete else f" (only the first {MAX_PREFIX_BYTES} bytes are read)"
    return clip(f"body{where}: {type(exc).__name__}: {exc}", 200)


def kafka_request_reads(data: bytes) -> bool:
    """Whether a whole request (without its size) reads as its API's request:
    the header, and the body as far as the record reads it (inference's check)."""
    try:
        header = read_request_header(data)
        api = ApiKey(header.api_key)
        reader = _TOPIC_READERS.get(api)
        if reader is not None:
            reader(Wire(Cursor(data, header.length), is_flexible(api, header.api_version)),
                   header.api_version, [])
    except (TruncatedError, MalformedError, LimitExceededError):
        return False
    return True


def _size_fits_at(buf: bytearray, pos: int) -> bool:
    """Whether a message size that fits is at ``pos`` (all four bytes of it)."""
    return pos + 4 <= len(buf) and (
        4 <= int.from_bytes(buf[pos:pos + 4], "big", signed=True) <= MAX_MESSAGE_SIZE)


def _sizes_chain_to_the_end(buf: bytearray) -> bool:
    """Whether ``buf`` is whole messages back to back, each size fitting."""
    pos = 0
    while pos < len(buf):
        if not _size_fits_at(buf, pos):
            return False
        pos += 4 + int.from_bytes(buf[pos:pos + 4], "big")
    return pos == len(buf)


@mypyc_attr(allow_interpreted_subclasses=True)  # see libtrace/compiled.py
class KafkaParser(StreamParser):
    """Kafka over TCP (both directions of one connection)."""

    protocol = "kafka"
    idle_when_empty = True  # _parse: nothing of no bytes

    def __init__(self, *, transport: Transport = "tcp", mid_stream: bool = False) -> None:
        super().__init__(transport=transport, mid_stream=mid_stream)
        self._inflight: OrderedDict[int, tuple[int, int]] = OrderedDict()

    def _frame(self, side: Side) -> tuple[bytes, int, bool] | None:
        """(the readable part of the next message, its size, whether it is all there)."""
        buf = side.buf
        if len(buf) < 4:
            return None
        size = int.from_bytes(buf[:4], "big", signed=True)
        if not 4 <= size <= MAX_MESSAGE_SIZE:
            raise MalformedError(f"Kafka message size {size}")
        want = min(size, MAX_PREFIX_BYTES)
        if len(buf) < 4 + want:
            return None
        return bytes(buf[4:4 + want]), size, want == size

    def _parse(self, side: Side) -> Message | None:
        frame = self._frame(side)
        if frame is None:
            return None
        data, size, complete = frame
        ts = side.ts_at(0)
        if side.direction is REQUEST:
            message: Message = self._request(data, size, complete, ts)
        else:
            message = self._response(data, size, complete, ts)
        side.consume(4 + len(data))
        side.skip = size - len(data)
        return message

    def _request(self, data: bytes, size: int, complete: bool, ts: int) -> KafkaRequest:
        header = read_request_header(data)
        api, version = ApiKey(header.api_key), header.api_version
        topics: list[str] = []
        errors: list[str] = []
        acks = None
        reader = _TOPIC_READERS.get(api)
        if reader is not None:
            wire = Wire(Cursor(data, header.length), is_flexible(api, version))
            try:
                result = reader(wire, version, topics)
                acks = result if isinstance(result, int) else None
            except (TruncatedError, MalformedError, LimitExceededError) as exc:
                errors.append(_cut(exc, complete))
        request = KafkaRequest(ts_ns=ts, size=4 + size, errors=tuple(errors), api=api,
                               api_version=version, correlation_id=header.correlation_id,
                               client_id=header.client_id, topics=tuple(topics), acks=acks,
                               _parsed=True)
        if request.expects_response:
            self._inflight[header.correlation_id] = (api, version)
            self._inflight.move_to_end(header.correlation_id)
            while len(self._inflight) > MAX_INFLIGHT:
                self._inflight.popitem(last=False)
        return request

    def _response(self, data: bytes, size: int, complete: bool, ts: int) -> KafkaResponse:
        cur = Cursor(data)
        correlation = cur.i32()
        known = self._inflight.pop(correlation, None)
        if known is None:
            return KafkaResponse(ts_ns=ts, size=4 + size, correlation_id=correlation,
                                 errors=(f"no request seen for correlation id {correlation}",),
                                 _parsed=True)
        api, version = ApiKey(known[0]), known[1]
        flexible = is_flexible(api, version)
        error_code = None
        errors: tuple[str, ...] = ()
        try:
            if flexible and api is not ApiKey.ApiVersions:
                Wire(cur, True).tags()
            reader = _ERROR_READERS.get(api)
            if reader is not None:
                error_code = reader(Wire(cur, flexible), version)
        except (TruncatedError, MalformedError, LimitExceededError) as exc:
            errors = (_cut(exc, complete),)
        return KafkaResponse(ts_ns=ts, size=4 + size, errors=errors, correlation_id=correlation,
                             api=api, api_version=version, error_code=error_code,
                             _parsed=True)

    def _plausible(self, side: Side, pos: int) -> bool | None:
        """Whether a message can start at ``pos``; ``None``: not enough bytes to tell."""
        buf = side.buf
        if len(buf) - pos < 4 + MIN_REQUEST_BYTES:
            return None
        size = int.from_bytes(buf[pos:pos + 4], "big", signed=True)
        if not 4 <= size <= MAX_MESSAGE_SIZE:
            return False
        if side.direction is RESPONSE:
            # Where the message would end, if that is in the buffer: exactly at
            # its end, or at the next size that fits.  Otherwise a resync hunting
            # for a known correlation id locks onto a byte pattern inside
            # another message (a cut response's int32 fields).
            end = pos + 4 + size
            ends = end == len(buf) or _size_fits_at(buf, end)
            correlation = int.from_bytes(buf[pos + 4:pos + 8], "big", signed=True)
            if correlation in self._inflight:
                if end < len(buf) < end + 4:
                    return None  # the next size is not all here yet
                return ends or end > len(buf)  # one that does not end here yet is believed
            # A response to a request before the capture began: believed where the
            # buffer starts (a mid-stream start is usually a message start) when
            # the sizes from there chain to the buffer's end exactly (bytes inside
            # a cut message rarely do), and only before the answers of the requests
            # seen (a broker answers a connection's requests in order; clients
            # count correlation ids up).
            earlier = not self._inflight or 0 <= correlation < min(self._inflight)
            return pos == 0 and earlier and _sizes_chain_to_the_end(buf)
        api_key = int.from_bytes(buf[pos + 4:pos + 6], "big", signed=True)
        version = int.from_bytes(buf[pos + 6:pos + 8], "big", signed=True)
        if api_key not in _KNOWN_API_KEYS or version > MAX_API_VERSION:
            # What reading the header below would conclude, without reading it
            # (its tagged fields, at every offset of the garbage a resync hunts
            # through, made 64 KiB in 64-byte pieces cost 2.8 s of CPU; seen
            # while measuring tox -e fuzz-deep).
            return False
        end = pos + 4 + min(size, MAX_PREFIX_BYTES)
        try:
            header = read_request_header(bytes(buf[pos + 4:end]))
        except (TruncatedError, MalformedError, LimitExceededError):
            return False
        client = header.client_id
        return (not ApiKey(header.api_key).name.startswith("UNKNOWN")
                and header.api_version <= MAX_API_VERSION and header.correlation_id >= 0
                and (client is None or client.isprintable()))

    def _resync(self, side: Side) -> bool:
        buf, waiting = side.buf, None
        for pos in range(len(buf)):
            verdict = self._plausible(side, pos)
            if verdict is None:
                break
            if verdict:
                size = int.from_bytes(buf[pos:pos + 4], "big")
                if len(buf) >= pos + 4 + min(size, MAX_PREFIX_BYTES):
                    side.consume(pos)
                    return True
                if waiting is None:
                    waiting = pos  # believed if nothing complete follows
        if waiting:
            side.consume(waiting)
        return False


#: The API keys ApiKey names (its members, not the UNKNOWN_ ones).
_KNOWN_API_KEYS = frozenset(int(key) for key in ApiKey)


# Inference: whether a direction's first bytes are this protocol's.

#: Highest Kafka API key known here (ApiKey enum of Kafka 3.x/4.x is < 90).
KAFKA_MAX_API_KEY = 90
#: Kafka API versions in use stay well below this.
KAFKA_MAX_API_VERSION = 30
#: Kafka requests larger than this are implausible as a first message.
KAFKA_MAX_REQUEST_BYTES = 100 * 1024 * 1024

#: A first segment shorter than this must contain the whole Kafka request.
KAFKA_MIN_PARTIAL_BYTES = 512


def _signature(data: bytes, udp: bool) -> Match:
    if udp or len(data) < 14:
        return None
    size, api_key, api_version, _correlation, client_len = struct.unpack_from(">ihhih", data)
    if not 10 <= size <= KAFKA_MAX_REQUEST_BYTES:
        return None
    if size > len(data) - 4 and len(data) < KAFKA_MIN_PARTIAL_BYTES:
        return None  # a short first segment must hold the whole request
    if not 0 <= api_key <= KAFKA_MAX_API_KEY or not 0 <= api_version <= KAFKA_MAX_API_VERSION:
        return None
    confidence = None
    if client_len == -1:
        confidence = 0.6
    elif 0 <= client_len <= 255 and len(data) >= 14 + client_len:
        client_id = data[14:14 + client_len]
        if client_len and PRINTABLE.fullmatch(client_id):
            confidence = 0.8 if size == len(data) - 4 else 0.7
        elif not client_len:
            confidence = 0.5
    if confidence is None:
        return None
    if size <= len(data) - 4 and not kafka_request_reads(data[4:4 + size]):
        # Whole (perhaps with more behind it), yet its body does not read as that
        # API's request: a response's correlation id can pass for an API key and
        # version (the sides swap).
        return 0.25, REQUEST
    return confidence, REQUEST


# What libtrace knows of the protocol (see _spec.py): its signature for
# inference, above, and the rest.
SPEC = ProtocolSpec(
    name="kafka",
    title="Kafka",
    parser=KafkaParser,
    signature=_signature,
    ports=frozenset({9092, 9093}),
    request_summary=("api", "api_version", "topics"),
    response_summary=("error_code",),
)

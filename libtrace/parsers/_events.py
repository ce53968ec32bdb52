"""What the parsers and the pairing layer emit.

Every event is a frozen, slotted, keyword-only dataclass.  Protocol modules
subclass :class:`Message` once per message kind (``Http1Request``,
``DnsResponse``, ...); users never subclass them.  A message knows the three
things the pairing layer needs and nothing about other messages:

* :attr:`Message.key` — the pairing key (HTTP/2 stream id, DNS id, Kafka
  correlation id); ``None`` means "pair in order" (HTTP/1, Redis, MySQL);
* :attr:`Message.expects_response` — ``False`` for one-way requests (MQTT
  QoS 0 PUBLISH, Kafka acks=0) and for unsolicited server pushes;
* :attr:`Message.outcome` — how a response classifies the exchange.

:meth:`Message.fields` gives the JSON-ready ``request``/``response`` object of
a record.  The default lists the dataclass fields a subclass declares.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Hashable
from dataclasses import InitVar, dataclass
from typing import Any, ClassVar, Final

from mypy_extensions import mypyc_attr

from ..frozen import hand_init
from ._errors import MalformedError
from ._limits import MAX_FIELD_CHARS


class Direction(enum.StrEnum):
    """Which way bytes flow on a connection."""

    #: client to server
    REQUEST = "request"
    #: server to client
    RESPONSE = "response"

    @property
    def other(self) -> Direction:
        return RESPONSE if self is REQUEST else REQUEST


#: Direction's members as module constants: compiled code reads these directly,
#: where ``Direction.REQUEST`` is an attribute lookup on the enum class (several
#: hundred instructions each under Python 3.11's ``EnumType``: callgrind).
REQUEST: Final = Direction.REQUEST
RESPONSE: Final = Direction.RESPONSE


class Status(enum.StrEnum):
    """The outcome of one request/response exchange."""

    #: the server answered and reported success
    OK = "ok"
    #: the server blamed the request (HTTP 4xx, DNS NXDOMAIN, Redis ERR)
    CLIENT_ERROR = "client_error"
    #: the server failed (HTTP 5xx, DNS SERVFAIL, gRPC INTERNAL)
    SERVER_ERROR = "server_error"
    #: no response came within the pairing timeout
    TIMEOUT = "timeout"
    #: the outcome cannot be known (capture ended, parts missing)
    UNKNOWN = "unknown"


class _NeedData:
    """The parser needs more bytes before it can emit another event."""

    _instance: ClassVar[_NeedData | None] = None

    def __new__(cls) -> _NeedData:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEED_DATA"

    def __bool__(self) -> bool:
        return False


#: Returned by ``next_event()`` when the buffered bytes hold no complete event.
NEED_DATA: Final = _NeedData()


def clip(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: Types that are JSON-ready as they are.  Matched by exact type, since enums
#: subclass ``str`` and ``int`` and must not pass as plain values.
_PLAIN: Final = frozenset({str, int, float, bool, type(None)})


def _jsonable(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, enum.Enum):
        return value.name if isinstance(value, enum.IntEnum) else value.value
    if isinstance(value, tuple | list):
        return [v if type(v) in _PLAIN else _jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


@mypyc_attr(allow_interpreted_subclasses=True)  # see libtrace/compiled.py
@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One request or response, as parsed from one direction of a connection.

    Attributes:
        ts_ns: time of the chunk that carried the message's first byte.
        size: bytes the message took on the wire (0 when unknown).
        errors: what went wrong while parsing it (partial messages say why).
    """

    ts_ns: int
    size: int = 0
    errors: tuple[str, ...] = ()
    _parsed: InitVar[bool] = False

    def __post_init__(self, _parsed: bool) -> None:
        if not _parsed:
            if self.ts_ns < 0 or self.size < 0:
                raise MalformedError("ts_ns and size must not be negative")
            self._validate()

    # What a message class says of all its messages is a property, not a
    # ClassVar: mypyc, which compiles these modules in the wheel, takes a
    # dataclass's ClassVar annotations for fields (mypyc issue 1122).

    @property
    def protocol(self) -> str:
        """The protocol's name, as in the parser registry."""
        return ""

    @property
    def direction(self) -> Direction:
        """Which way the message travels (a response class overrides this)."""
        return REQUEST

    @property
    def _not_fields(self) -> frozenset[str]:
        """The dataclass fields :meth:`fields` leaves out."""
        return frozenset({"ts_ns", "size", "errors"})

    def _validate(self) -> None:
        """Check a user-built message; parsers skip this with ``_parsed=True``."""

    @property
    def key(self) -> Hashable | None:
        """Pairing key; ``None`` pairs responses with requests in order."""
        return None

    @property
    def loose_key(self) -> Hashable | None:
        """A response whose ``key`` pairs with no request may still pair with the
        oldest waiting request of this looser key (a DNS error reply without its
        question: the id only); ``None``: no such second try."""
        return None

    @property
    def expects_response(self) -> bool:
        """Whether a response is to be waited for (requests) or paired (responses)."""
        return True

    @property
    def outcome(self) -> Status:
        """What this response says about the exchange (requests: OK)."""
        return Status.OK

    def fields(self) -> dict[str, Any]:
        """The JSON-ready object that stands for this message in a record."""
        # Every record calls this twice, so the field names come from a
        # per-class cache, and plain values skip the call to _jsonable.
        out: dict[str, Any] = {}
        for name in _field_names(self):
            value = getattr(self, name)
            out[name] = value if type(value) in _PLAIN else _jsonable(value)
        if self.errors:
            out["errors"] = list(self.errors)
        return out


#: The names :meth:`Message.fields` lists, per message class.
_FIELD_NAMES: dict[type[Message], tuple[str, ...]] = {}


def _field_names(message: Message) -> tuple[str, ...]:
    """The fields :meth:`Message.fields` lists for ``message``'s class, in declaration order."""
    cls = type(message)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        skip = message._not_fields
        names = tuple(f.name for f in dataclasses.fields(cls) if f.name not in skip)
        _FIELD_NAMES[cls] = names
    return names


@dataclass(frozen=True, slots=True, kw_only=True)
class Desync:
    """The parser lost track of message boundaries in one direction.

    Emitted when bytes are missing (a capture gap, a buffer overflow) or do
    not parse; the parser then hunts for the next message start.  Pairing
    layers drop their in-order queues on it, since a response may be lost,
    unless ``kept_order`` says the cut message was kept.
    """

    direction: Direction
    ts_ns: int
    reason: str
    #: The message the missing bytes cut was kept (partial, just before this),
    #: so the messages stay in order and waiting requests need not be dropped.
    kept_order: bool = False


Event = Message | Desync


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """A request and its response, paired, or one of them alone.

    Attributes:
        protocol: the parser's name.
        ts_ns: the request's timestamp (the response's when there is no request).
        latency_ns: response ts minus request ts; ``None`` unless both exist.
        status: the outcome.
    """

    protocol: str
    ts_ns: int
    latency_ns: int | None
    status: Status
    request: Message | None = None
    response: Message | None = None

    def __init__(  # pragma: no cover
        self, *, protocol: str, ts_ns: int, latency_ns: int | None, status: Status,
        request: Message | None = None, response: Message | None = None,
    ) -> None:  # fmt: skip
        # By hand, for speed once compiled: see libtrace/frozen.py.
        self.protocol = protocol  # type: ignore[misc]
        self.ts_ns = ts_ns  # type: ignore[misc]
        self.latency_ns = latency_ns  # type: ignore[misc]
        self.status = status  # type: ignore[misc]
        self.request = request  # type: ignore[misc]
        self.response = response  # type: ignore[misc]

    def to_dict(
        self, client: str | None = None, server: str | None = None, *, headers: bool = False
    ) -> dict[str, Any]:
        """The JSON object of the ``libtrace pcap --json`` contract; with
        ``headers``, HTTP messages list their headers too (``--headers``)."""
        return {
            "type": "record",
            "protocol": self.protocol,
            "client": client,
            "server": server,
            "ts_ns": self.ts_ns,
            "latency_ns": self.latency_ns,
            "status": self.status.value,
            "request": _message_json(self.request, headers),
            "response": _message_json(self.response, headers),
        }


def _message_json(message: Message | None, headers: bool) -> dict[str, Any] | None:
    if message is None:
        return None
    out = message.fields()
    pairs = getattr(message, "headers", None) if headers else None
    if pairs is not None:
        out["headers"] = [[name, value] for name, value in pairs]
    return out


hand_init(Record)

"""Sans-IO protocol parsers, protocol inference and request/response pairing.

Using them
==========
::

    from libtrace.parsers import NEED_DATA, Pairer, infer, parser_for

    parser = parser_for("http1")()             # one parser per connection
    pairer = Pairer()
    parser.feed("request", b"GET / HTTP/1.1\\r\\n\\r\\n", ts_ns=1_000)
    parser.feed("response", b"HTTP/1.1 204 No Content\\r\\n\\r\\n", ts_ns=2_000)
    while (event := parser.next_event()) is not NEED_DATA:
        for record in pairer.add(event):        # Message or Desync in,
            print(record.to_dict())             # Record out
    for record in pairer.flush():               # what never got an answer
        print(record.to_dict())

* ``feed(direction, data, ts_ns)`` only buffers; ``b""`` ends a direction;
  ``feed_gap(direction, size, ts_ns)`` reports missing bytes.  For UDP
  (``parser_for("dns")(transport="udp")``) each ``feed`` is one datagram.
* ``next_event()`` returns a :class:`Message` subclass, a :class:`Desync`
  (bytes lost or unparsable: the parser resynchronises by itself) or
  :data:`NEED_DATA`.  It never raises on any input; every bound it keeps is a
  constant in :mod:`libtrace.parsers._limits`.
* ``infer(first_bytes, transport=..., ports=...)`` names the protocol with a
  confidence; ports only raise the confidence of a byte-level match.
* A :class:`Pairer` turns messages into :class:`Record` objects with latency
  and a :class:`Status`.

Adding a protocol
=================
1. Create ``libtrace/parsers/_<name>.py`` with a "theory of operation"
   docstring and:

   * one frozen, slotted, keyword-only dataclass per message kind,
     subclassing :class:`Message`, with ``protocol``/``direction`` class
     variables.  Override ``key`` (pairing key; ``None`` = in order),
     ``expects_response`` (one-way messages) and ``outcome`` (response
     status) as the protocol needs; ``fields()`` lists the dataclass fields
     for JSON unless overridden.  Build them with ``_parsed=True``.
   * codes as ``IntEnum`` with ``_missing_`` that makes unknown values members
     (see :func:`open_enum`), never bare ints.
   * a :class:`StreamParser` subclass with ``protocol = "<name>"`` (and
     ``transports`` if it runs over UDP) implementing ``_parse(side)`` and,
     ideally, ``_resync(side)`` and ``_reset(side)`` — their contract is in
     :mod:`libtrace.parsers._base`.  Read binary fields only through
     :class:`Cursor` (``restrict_to`` a frame once its length prefix is
     buffered), so a lie in a length field is a :class:`TruncatedError`.
     Raise only :class:`ProtocolError` subclasses; the base turns them into
     a :class:`Desync` and resynchronises.  New limits go to ``_limits.py``.
2. Register the class in :data:`PARSERS` below.  Its signature in
   :mod:`~libtrace.parsers.inference` already exists for the eight protocols.
3. Add ``tests/parsers/test_<name>.py``: a cases table fed whole, byte by byte
   and with trailing junk (see ``tests/parsers/_harness.py``), and Hypothesis
   tests marked ``fuzz`` built with ``tests/parsers/_fuzz.py``.
4. Record a fixture: add a scenario to :mod:`libtrace.services.record`.
"""

from __future__ import annotations

from ..errors import ProtocolError
from ._base import SKIP_TO_EOF, Side, StreamParser, Transport
from ._cursor import Cursor
from ._dns import DnsParser, DnsQuery, DnsResponse
from ._dubbo import DubboParser, DubboRequest, DubboResponse, DubboStatus
from ._enums import open_enum
from ._errors import LimitExceededError, MalformedError, TruncatedError, UnknownProtocolError
from ._events import NEED_DATA, Desync, Direction, Event, Message, Record, Status, clip
from ._http1 import Http1Parser, Http1Request, Http1Response
from ._http2 import Http2Parser, Http2Request, Http2Response
from ._kafka import ApiKey, KafkaParser, KafkaRequest, KafkaResponse
from ._limits import MAX_ARGS_KEPT
from ._mqtt import MqttParser, MqttRequest, MqttResponse, PacketType
from ._mysql import Command, MysqlParser, MysqlRequest, MysqlResponse
from ._redis import RedisParser, RedisRequest, RedisResponse
from .inference import PROTOCOLS, Inference, infer
from .pairing import DEFAULT_TIMEOUT_NS, Pairer

#: Protocol name -> parser class.  The names are those of :data:`PROTOCOLS`.
PARSERS: dict[str, type[StreamParser]] = {
    "http1": Http1Parser,
    "http2": Http2Parser,
    "redis": RedisParser,
    "dns": DnsParser,
    "mysql": MysqlParser,
    "kafka": KafkaParser,
    "mqtt": MqttParser,
    "dubbo": DubboParser,
}


def parser_for(protocol: str) -> type[StreamParser]:
    """The parser class registered for ``protocol``.

    Raises:
        UnknownProtocolError: no parser is registered under that name.
    """
    try:
        return PARSERS[protocol]
    except KeyError:
        raise UnknownProtocolError(f"no parser for protocol {protocol!r} "
                                   f"(have {', '.join(sorted(PARSERS))})") from None


__all__ = [
    "DEFAULT_TIMEOUT_NS",
    "MAX_ARGS_KEPT",
    "NEED_DATA",
    "PARSERS",
    "PROTOCOLS",
    "SKIP_TO_EOF",
    "ApiKey",
    "Command",
    "Cursor",
    "Desync",
    "Direction",
    "DnsParser",
    "DnsQuery",
    "DnsResponse",
    "DubboParser",
    "DubboRequest",
    "DubboResponse",
    "DubboStatus",
    "Event",
    "Http1Parser",
    "Http1Request",
    "Http1Response",
    "Http2Parser",
    "Http2Request",
    "Http2Response",
    "Inference",
    "KafkaParser",
    "KafkaRequest",
    "KafkaResponse",
    "LimitExceededError",
    "MalformedError",
    "Message",
    "MqttParser",
    "MqttRequest",
    "MqttResponse",
    "MysqlParser",
    "MysqlRequest",
    "MysqlResponse",
    "PacketType",
    "Pairer",
    "ProtocolError",
    "Record",
    "RedisParser",
    "RedisRequest",
    "RedisResponse",
    "Side",
    "Status",
    "StreamParser",
    "Transport",
    "TruncatedError",
    "UnknownProtocolError",
    "clip",
    "infer",
    "open_enum",
    "parser_for",
]

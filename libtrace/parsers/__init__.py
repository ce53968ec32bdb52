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
     subclassing :class:`Message`, overriding the ``protocol`` and
     ``direction`` properties (properties, not ``ClassVar``s: these modules
     are compiled by mypyc, see :mod:`libtrace.compiled`).  Override ``key``
     (pairing key; ``None`` = in order),
     ``expects_response`` (one-way messages) and ``outcome`` (response
     status) as the protocol needs; ``fields()`` lists the dataclass fields
     for JSON unless overridden.  Build them with ``_parsed=True``.  Give
     each an ``__init__`` of its own that stores every field, and pass the
     classes to :func:`libtrace.frozen.hand_init` (mypyc leaves the
     dataclasses' ``__init__`` interpreted; ``tests/parsers/test_hand_init.py``
     then checks them).
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
     If ``_parse`` makes nothing of an empty buffer (no queue of ready
     messages, no body that ends by itself), say ``idle_when_empty = True``
     and add the protocol to ``tests/parsers/test_idle_when_empty.py``.
   * at its end, ``SPEC``: a :class:`ProtocolSpec` with the name, the
     title, the parser class, the signature (``_signature(data, udp)``,
     recognising the protocol from a direction's first bytes: structure,
     not magic numbers), the well-known ports and the fields a table row
     shows.  Inference, the parser table, ``libtrace pcap``/``check`` rows
     and the kernel matrix's ``check_<name>`` column all read it.
2. Add the spec to the built-ins' line in :mod:`libtrace.parsers.registry`
   (or, outside libtrace, call :func:`register`; ``tests/parsers/
   test_protocol_descriptor.py`` does that with a toy protocol).
3. Add a service, ``libtrace/services/_<name>.py`` (a real server, its
   readiness probe, client traffic, its fixture's name), to
   :mod:`libtrace.services._registry`: ``libtrace check <name>``, its
   matrix column and the fixture recorder's scenario come from it.
4. Add ``tests/parsers/test_<name>.py``: a cases table fed whole, byte by byte
   and with trailing junk (see ``tests/parsers/_harness.py``), and Hypothesis
   tests marked ``fuzz`` that check split invariance with the harness.
5. Record the fixture (``python -m libtrace.services.record <name>``), which
   tshark (``libtrace.pcap.oracle``) must agree with; an oracle view in
   ``libtrace/pcap/oracle/_views.py`` if tshark dissects the protocol.
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
from ._spec import Match, ProtocolSpec, Redactor
from .inference import Inference, infer
from .pairing import DEFAULT_TIMEOUT_NS, Pairer
from .registry import PARSERS, SPECS, parser_for, register, spec_for, unregister

__all__ = [
    "DEFAULT_TIMEOUT_NS",
    "MAX_ARGS_KEPT",
    "NEED_DATA",
    "PARSERS",
    "SKIP_TO_EOF",
    "SPECS",
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
    "Match",
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
    "ProtocolSpec",
    "Record",
    "Redactor",
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
    "register",
    "spec_for",
    "unregister",
]

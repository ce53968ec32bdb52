"""What ``libtrace stat`` groups records by: one key function per protocol, and the dimensions.

A key names the operation an exchange performed, without the data it
carried, so that many exchanges share it: an HTTP method and the path's
template (numeric, hexadecimal and UUID segments read ``{id}``, the query and
fragment dropped), a Redis command, a MySQL statement's shape (every literal
``?``), a Kafka API and its topics, an MQTT packet type and its topic, a DNS
question (type and name), a Dubbo service and method.  The keys are made
from the typed messages of a record (:class:`~libtrace.parsers.Record`), so
they work on live records and a capture's alike, and they hold no secret a
record's redaction would have taken out (queries and literals are gone).

A dimension (``--by``) is a function of a whole record: its protocol, its
key, its server, its client's address (without the ephemeral port), the
traced process (live records only) or its status.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from typing import Any, Final

from ..flows import FlowRecord
from ..parsers import Message, Record, clip
from ..parsers.redaction import without_literals

#: The most characters a key keeps: a row of the table is one line.
MAX_KEY_CHARS: Final = 80
#: What a path segment that names one resource among many reads.
ID: Final = "{id}"
#: What a record without the message its key comes from reads.
NO_REQUEST: Final = "(no request)"

#: A path segment that names one resource: decimal digits, a UUID, or eight or more
#: hexadecimal digits with a decimal digit among them (object ids, hashes; words of
#: letters alone, like "deadbeef", are rarely ids and stay).
_ID_SEGMENT = re.compile(
    r"\d+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|(?=\D*\d)[0-9a-f]{8,}",
    re.ASCII | re.IGNORECASE,
)
#: A list of two or more placeholders (``IN (?, ?, ?)``, a row of ``VALUES``), and
#: a list of such rows: their length is data, not shape.
_PLACEHOLDERS = re.compile(r"\?(?:\s*,\s*\?)+")
_ROW = r"\(\?(?:, …)?\)"
_ROWS = re.compile(rf"({_ROW})(?:\s*,\s*{_ROW})+")
_SPACE = re.compile(r"\s+")


def path_template(target: str) -> str:
    """An HTTP request target as its route: ``/users/42/orders?page=2`` → ``/users/{id}/orders``.

    The query and fragment are dropped, an absolute form's scheme and
    authority too (``http://host/a`` → ``/a``); a segment of decimal digits, a
    UUID, or eight or more hexadecimal digits with a decimal digit among them
    reads :data:`ID`.
    """
    path = target.split("#", 1)[0].split("?", 1)[0]
    if "://" in path:
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    segments = path.split("/")
    for i, segment in enumerate(segments):
        if _ID_SEGMENT.fullmatch(segment):
            segments[i] = ID
    return "/".join(segments)


def sql_shape(query: str) -> str:
    """A SQL statement without its data: literals ``?`` (the redaction's scanner),
    lists of them ``?, …``, runs of white space one space."""
    shape, _ = without_literals(query)
    shape = _PLACEHOLDERS.sub("?, …", _SPACE.sub(" ", shape).strip())
    return _ROWS.sub(r"\1, …", shape)


def _name(value: Any) -> str:
    """A field as a key writes it: an enum by its name (``Produce``, ``PUBLISH``)."""
    if isinstance(value, enum.Enum):
        return value.name
    return "" if value is None else str(value)


def _words(*parts: Any) -> str:
    return " ".join(text for text in map(_name, parts) if text)


def _http(request: Message | None, response: Message | None) -> str:
    method, path = getattr(request, "method", None), getattr(request, "path", None)
    if method is None and path is None:
        return NO_REQUEST
    return _words(method, path_template(path) if path is not None else None)


def _redis(request: Message | None, response: Message | None) -> str:
    command = getattr(request, "command", None)
    return command.upper() if command else NO_REQUEST


def _mysql(request: Message | None, response: Message | None) -> str:
    if request is None:
        return "(handshake)" if getattr(response, "kind", None) == "greeting" else NO_REQUEST
    query = getattr(request, "query", None)
    return sql_shape(query) if query else _name(getattr(request, "command", None))


def _kafka(request: Message | None, response: Message | None) -> str:
    if request is None:
        return _name(getattr(response, "api", None)) or NO_REQUEST
    return _words(getattr(request, "api", None), ",".join(getattr(request, "topics", ())))


def _mqtt(request: Message | None, response: Message | None) -> str:
    if request is None:
        return NO_REQUEST
    topic = getattr(request, "topic", None) or ",".join(getattr(request, "topics", ()))
    return _words(getattr(request, "packet_type", None), topic)


def _dns(request: Message | None, response: Message | None) -> str:
    # A response alone (mDNS announcements) still has its question, when it carried one.
    question = request if request is not None else response
    words = _words(getattr(question, "qtype", None), getattr(question, "name", None))
    return words or NO_REQUEST


def _dubbo(request: Message | None, response: Message | None) -> str:
    if request is None:
        return NO_REQUEST
    if getattr(request, "heartbeat", False):
        return "(heartbeat)"
    service, method = getattr(request, "service", None), getattr(request, "method", None)
    if service is None and method is None:
        return "(event)" if getattr(request, "event", False) else NO_REQUEST
    return f"{service or '?'}.{method or '?'}"


#: Protocol name → its key function (request, response) → key.
KEYS: Final[dict[str, Callable[[Message | None, Message | None], str]]] = {
    "http1": _http, "http2": _http, "redis": _redis, "mysql": _mysql, "kafka": _kafka,
    "mqtt": _mqtt, "dns": _dns, "dubbo": _dubbo,
}  # fmt: skip


def key_of(exchange: Record) -> str:
    """The operation of an exchange, as :data:`KEYS` name it (the protocol's name for
    a protocol without a key function); at most :data:`MAX_KEY_CHARS` characters."""
    function = KEYS.get(exchange.protocol)
    if function is None:
        return exchange.protocol
    return clip(function(exchange.request, exchange.response), MAX_KEY_CHARS)


def _client_host(record: FlowRecord) -> str:
    # The client's port is ephemeral: one per connection, not one per client.
    client = record.client or "-"
    return client.rpartition(":")[0] or client


#: What ``--by`` may name: dimension → its value for a record.  ``process`` is
#: the traced process's name (``comm``), which only live records have.
DIMENSIONS: Final[dict[str, Callable[[FlowRecord], str]]] = {
    "protocol": lambda record: record.protocol,
    "key": lambda record: key_of(record.exchange),
    "server": lambda record: record.server or "-",
    "client": _client_host,
    "process": lambda record: str(getattr(record, "comm", "-")),
    "status": lambda record: record.exchange.status.value,
}
#: The dimensions only live records have.
LIVE_ONLY: Final = frozenset({"process"})
#: ``--by``'s default: one row per protocol and operation.
DEFAULT_BY: Final = ("protocol", "key")


def parse_by(text: str) -> tuple[str, ...]:
    """``--by protocol,key`` → ``("protocol", "key")``; ValueError naming an unknown
    dimension, or an empty or repeated one."""
    names = tuple(part.strip() for part in text.split(","))
    unknown = [name for name in names if name not in DIMENSIONS]
    if unknown or len(set(names)) != len(names):
        wrong = ", ".join(unknown) if unknown else "a repeated dimension"
        raise ValueError(f"{wrong} (choose from {', '.join(DIMENSIONS)}, comma-separated)")
    return names

"""What libtrace knows of one protocol, in one place: :class:`ProtocolSpec`.

Each protocol module (``_<name>.py``) ends with its spec; the registry
(:mod:`libtrace.parsers.registry`) lists them, and everything that names the
protocols derives from it: the parser table, inference's signatures and
port hints, the summary a ``libtrace pcap`` or ``libtrace check`` row shows,
and (with a service of the same name) the kernel matrix's ``check_<name>``
column.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ._events import Direction

if TYPE_CHECKING:
    from ._base import StreamParser, Transport
    from ._events import Message
    from .redaction import Redaction

#: A signature's verdict on a direction's first bytes: (confidence in [0, 1],
#: the side that sent them, None when the bytes cannot tell), or no match.
Match = tuple[float, Direction | None] | None
#: A signature: (first bytes, whether the transport is UDP) -> Match.
Signature = Callable[[bytes, bool], Match]

#: A protocol's redaction rule: the message with its secrets replaced (counted
#: by the :class:`~libtrace.parsers.redaction.Redaction`), or the same message.
Redactor = Callable[["Message", "Redaction"], "Message"]

#: Printable ASCII with tabs and line ends: names, topics, SQL.
PRINTABLE: Final = re.compile(rb"[\x09\x0a\x0d\x20-\x7e]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolSpec:
    """One protocol, as every part of libtrace sees it.

    Attributes:
        name: the protocol's name in records, options and tables (``"redis"``).
        title: how headings write it (``"Redis"``).
        parser: the sans-IO parser class (its ``protocol`` is ``name``).
        signature: recognises the protocol from a direction's first bytes
            (see :mod:`libtrace.parsers.inference`); structure, not magic.
        ports: well-known ports; they raise a byte-level match's confidence,
            never make one.
        request_summary, response_summary: the message fields a table row
            shows, in order; ``"a|b"`` shows the first of a, b with a value.
        redact: takes the secrets out of a message (see
            :mod:`libtrace.parsers.redaction`); None where its messages keep none.
    """

    name: str
    title: str
    parser: type[StreamParser]
    signature: Signature
    ports: frozenset[int] = frozenset()
    request_summary: tuple[str, ...] = ()
    response_summary: tuple[str, ...] = ()
    redact: Redactor | None = None

    @property
    def transports(self) -> tuple[Transport, ...]:
        """The transports the parser reads (``"tcp"``, ``"udp"``)."""
        return self.parser.transports

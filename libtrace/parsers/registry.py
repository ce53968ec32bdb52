"""The protocols libtrace knows: one :class:`ProtocolSpec` each, in one table.

:data:`SPECS` is that table; :data:`PARSERS` (name -> parser class) is kept
from it, and inference, the pcap and check tables and the kernel matrix's
``check_<name>`` columns read it when they run, so a protocol registered
with :func:`register` (a ninth one, or a toy one in a test) is recognised,
parsed, summarised and offered as a column with no other change.

The order is inference's: at equal confidence the earlier protocol wins.
"""

from __future__ import annotations

from ._base import StreamParser
from ._dns import SPEC as DNS
from ._dubbo import SPEC as DUBBO
from ._errors import UnknownProtocolError
from ._http1 import SPEC as HTTP1
from ._http2 import SPEC as HTTP2
from ._kafka import SPEC as KAFKA
from ._mqtt import SPEC as MQTT
from ._mysql import SPEC as MYSQL
from ._redis import SPEC as REDIS
from ._spec import ProtocolSpec

#: Protocol name -> spec, in inference order.
SPECS: dict[str, ProtocolSpec] = {}
#: Protocol name -> parser class (the specs' parsers).
PARSERS: dict[str, type[StreamParser]] = {}


def register(spec: ProtocolSpec) -> None:
    """Add a protocol (last in inference order).

    Raises:
        ValueError: the name is taken, or the parser says another name.
    """
    if spec.name in SPECS:
        raise ValueError(f"protocol {spec.name!r} is registered already")
    if spec.parser.protocol != spec.name:
        raise ValueError(f"the parser of {spec.name!r} says it parses {spec.parser.protocol!r}")
    SPECS[spec.name] = spec
    PARSERS[spec.name] = spec.parser


def unregister(name: str) -> ProtocolSpec:
    """Remove a protocol; returns its spec.

    Raises:
        UnknownProtocolError: no protocol of that name is registered.
    """
    spec = spec_for(name)
    del SPECS[name], PARSERS[name]
    return spec


def spec_for(protocol: str) -> ProtocolSpec:
    """The spec registered for ``protocol``.

    Raises:
        UnknownProtocolError: no protocol of that name is registered.
    """
    try:
        return SPECS[protocol]
    except KeyError:
        raise UnknownProtocolError(f"no parser for protocol {protocol!r} "
                                   f"(have {', '.join(sorted(SPECS))})") from None


def parser_for(protocol: str) -> type[StreamParser]:
    """The parser class registered for ``protocol``.

    Raises:
        UnknownProtocolError: no parser is registered under that name.
    """
    return spec_for(protocol).parser


for _builtin in (HTTP2, HTTP1, DUBBO, MYSQL, REDIS, KAFKA, MQTT, DNS):
    register(_builtin)

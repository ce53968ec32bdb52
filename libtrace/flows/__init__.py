"""The flow layer: one connection's bytes, in order, to records.

Both front-ends stand on it.  ``libtrace.pcap`` turns packets into flows:
:class:`TcpStream` orders a direction's segments by sequence number.
``libtrace.records`` turns tracer events into flows: :class:`StreamReassembler`
orders a socket's chunks by the kernel's byte offsets.  Either way the result
is :class:`Chunk`\\ s (bytes, or a hole of known size) per sender, which a
:class:`Conversation` hands to inference, a parser and a pairer, and which
come out as :class:`~libtrace.parsers.Record`\\ s.

The path of a live event: ``SocketEvent`` (tracer) → ``StreamReassembler``
(in stream order, gaps reported; ``StreamChunk``) → ``Chunk`` →
``Conversation`` (inference, parser, pairer) → ``Record`` → ``LiveRecord``
(a :class:`FlowRecord` with the process's context, ``libtrace.records``) → a
dict at the output edge (``to_json``).  Of a captured packet: ``Packet``
(pcap reader) → ``TcpStream`` → ``Chunk`` → ``Conversation`` → ``Record`` →
``FlowRecord`` → a dict or a table row (``libtrace.output``).
"""

from __future__ import annotations

from .budget import DEFAULT_BUDGET_BYTES, MemoryBudget
from .chunk import Chunk
from .conversation import ChunkLike, Conversation, Endpoint, FlowRecord, endpoint_text
from .offsets import StreamChunk, StreamReassembler
from .tcp import TcpStream

__all__ = [
    "DEFAULT_BUDGET_BYTES",
    "Chunk",
    "ChunkLike",
    "Conversation",
    "Endpoint",
    "FlowRecord",
    "MemoryBudget",
    "StreamChunk",
    "StreamReassembler",
    "TcpStream",
    "endpoint_text",
]

"""Offline analysis of pcap and pcapng captures (``libtrace pcap FILE``).

:func:`analyze` yields JSON-ready records; :func:`read_packets` yields TCP
and UDP packets; :class:`PcapAnalyzer` takes packets one by one;
:class:`PcapngWriter` writes tracer events as a pcapng (``trace --write``).  Every
failure to read a file is a :class:`PcapError` with one sentence.
"""

from ..flows import Chunk, TcpStream  # the flow layer's, re-exported
from ._errors import PcapError
from ._reader import Packet, read_packets
from ._session import PcapAnalyzer, analyze
from .writer import PcapngWriter, WriterStats

__all__ = ["Chunk", "Packet", "PcapAnalyzer", "PcapError", "PcapngWriter", "TcpStream",
           "WriterStats", "analyze", "read_packets"]

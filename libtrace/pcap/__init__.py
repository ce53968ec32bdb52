"""Offline analysis of pcap and pcapng captures (``libtrace pcap FILE``).

:func:`analyze` yields JSON-ready records; :func:`read_packets` yields TCP
and UDP packets; :class:`PcapAnalyzer` takes packets one by one.  Every
failure to read a file is a :class:`PcapError` with one sentence.
"""

from ..flows import Chunk, TcpStream  # the flow layer's, re-exported
from ._errors import PcapError
from ._reader import Packet, read_packets
from ._session import PcapAnalyzer, analyze

__all__ = ["Chunk", "Packet", "PcapAnalyzer", "PcapError", "TcpStream", "analyze",
           "read_packets"]

"""libtrace: trace application protocols with eBPF, and prove it kernel by kernel.

The public API is re-exported here; ``import libtrace`` needs neither libbpf
nor privileges (they are needed only when a :class:`Tracer` starts).
"""

from .errors import (
    BpfError,
    ConfigError,
    GoBinaryError,
    LibtraceError,
    PrivilegeError,
    ProtocolError,
    UnsupportedKernelError,
    VmError,
)
from .tracer.events import Direction, EventFlag, EventType, SocketEvent, Syscall
from .tracer.reassembly import StreamChunk, StreamReassembler
from .tracer.tracer import Tracer, TracerConfig, TracerStats

__version__ = "0.1.0"

__all__ = [
    "BpfError",
    "ConfigError",
    "Direction",
    "EventFlag",
    "EventType",
    "GoBinaryError",
    "LibtraceError",
    "PrivilegeError",
    "ProtocolError",
    "SocketEvent",
    "StreamChunk",
    "StreamReassembler",
    "Syscall",
    "Tracer",
    "TracerConfig",
    "TracerStats",
    "UnsupportedKernelError",
    "VmError",
    "__version__",
]

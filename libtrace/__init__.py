"""libtrace: trace application protocols with eBPF, and prove it kernel by kernel.

The public API is re-exported here; ``import libtrace`` needs neither libbpf
nor privileges (they are needed only when a :class:`Tracer` starts).

The names are imported on first access (PEP 562): ``import libtrace`` and the
``libtrace`` command's start stay cheap, while ``from libtrace import Tracer``
and ``libtrace.Tracer`` work as if they were imported here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from .flows import FlowRecord, StreamChunk, StreamReassembler
    from .records import LiveRecord
    from .tracer.events import Direction, EventFlag, EventType, SocketEvent, Syscall
    from .tracer.tracer import Tracer, TracerConfig, TracerStats

__version__ = "0.1.0"

#: Where each public name lives (the module is imported when the name is first used).
_EXPORTS = {
    "BpfError": ".errors",
    "ConfigError": ".errors",
    "GoBinaryError": ".errors",
    "LibtraceError": ".errors",
    "PrivilegeError": ".errors",
    "ProtocolError": ".errors",
    "UnsupportedKernelError": ".errors",
    "VmError": ".errors",
    "Direction": ".tracer.events",
    "EventFlag": ".tracer.events",
    "EventType": ".tracer.events",
    "SocketEvent": ".tracer.events",
    "Syscall": ".tracer.events",
    "FlowRecord": ".flows",
    "LiveRecord": ".records",
    "StreamChunk": ".flows",
    "StreamReassembler": ".flows",
    "Tracer": ".tracer.tracer",
    "TracerConfig": ".tracer.tracer",
    "TracerStats": ".tracer.tracer",
}


if not TYPE_CHECKING:  # type checkers see the imports above, and no other name

    def __getattr__(name: str) -> Any:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value  # later accesses do not come back here
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "BpfError",
    "ConfigError",
    "Direction",
    "EventFlag",
    "EventType",
    "FlowRecord",
    "GoBinaryError",
    "LibtraceError",
    "LiveRecord",
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

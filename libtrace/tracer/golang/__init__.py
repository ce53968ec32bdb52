"""The Go binary inspector: what the Go TLS uprobes need to know about a binary.

``inspect_binary(path)`` returns a :class:`GoBinary` with the Go version,
ABI, PIE-ness, the entry and RET offsets of ``crypto/tls.(*Conn).Read/Write``
and the struct offsets from ``*tls.Conn`` to the socket fd and to the
goroutine id.  :mod:`libtrace.host.go_toolchains` (the harness's, not the
library's) fetches Debian's Go toolchains and builds test programs with them.
"""

from ._buildinfo import BuildInfo, read_buildinfo
from ._image import CorruptBinaryError, NotElfError, NotGoError
from .inspect import (
    TLS_FUNCTIONS,
    TLS_READ,
    TLS_WRITE,
    TLS_WRITE_RECORD,
    GoBinary,
    GoFunction,
    abi_of,
    call_offsets,
    entry_probe_offset,
    inspect_binary,
    ret_offsets,
)

__all__ = [
    "TLS_FUNCTIONS",
    "TLS_READ",
    "TLS_WRITE",
    "TLS_WRITE_RECORD",
    "BuildInfo",
    "CorruptBinaryError",
    "GoBinary",
    "GoFunction",
    "NotElfError",
    "NotGoError",
    "abi_of",
    "call_offsets",
    "entry_probe_offset",
    "inspect_binary",
    "read_buildinfo",
    "ret_offsets",
]

"""The one bounded cursor for binary wire formats.

Theory of operation: a :class:`Cursor` reads fields from an immutable byte
buffer, front to back.  Every read checks the bytes left *before* touching
them, so running off the end is always :class:`TruncatedError` — never
``IndexError`` or ``struct.error`` — and no read allocates more than the
buffer holds, whatever a length field claims.  :meth:`Cursor.restrict_to`
narrows the cursor to one length-delimited part (a frame, a tagged field),
so a lying inner length cannot read into the next message.

Stream parsers use it on a complete frame: they first check that the frame's
length prefix is satisfied by the buffer (else they wait for more bytes), then
parse the frame through a cursor; a ``TruncatedError`` then means a corrupt
frame, not a short read.  Modelled on dnspython's ``wirebase.Parser``.
"""

from __future__ import annotations

import builtins
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ._errors import LimitExceededError, TruncatedError
from ._limits import MAX_VARINT_BYTES

_U16BE, _U16LE = struct.Struct(">H"), struct.Struct("<H")
_U32BE, _U32LE = struct.Struct(">I"), struct.Struct("<I")
_U64BE, _U64LE = struct.Struct(">Q"), struct.Struct("<Q")
_I16BE, _I32BE, _I64BE = struct.Struct(">h"), struct.Struct(">i"), struct.Struct(">q")
_I16LE, _I32LE, _I64LE = struct.Struct("<h"), struct.Struct("<i"), struct.Struct("<q")
_F64BE = struct.Struct(">d")


class Cursor:
    """Bounded reads over ``data[start:end]``.

    Args:
        data: the bytes to read (bytes, bytearray or memoryview; not copied).
        start: where reading begins.
        end: where reading must stop (default: the end of ``data``).
    """

    __slots__ = ("_data", "_end", "pos")

    def __init__(self, data: bytes | bytearray | memoryview, start: int = 0,
                 end: int | None = None) -> None:
        self._data = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        self._end = len(data) if end is None else min(end, len(data))
        self.pos = max(0, min(start, self._end))

    @property
    def remaining(self) -> int:
        """Bytes left before the current end."""
        return self._end - self.pos

    def _take(self, n: int) -> int:
        if n < 0:
            raise LimitExceededError(f"negative length {n}")
        if n > self._end - self.pos:
            raise TruncatedError(f"need {n} bytes at offset {self.pos}, "
                                 f"{self._end - self.pos} left")
        start = self.pos
        self.pos += n
        return start

    def _unpack(self, fmt: struct.Struct) -> int:
        start = self._take(fmt.size)
        value: int = fmt.unpack_from(self._data, start)[0]
        return value

    # -- fixed-size integers -------------------------------------------------
    def u8(self) -> int:
        """One unsigned byte."""
        return self._data[self._take(1)]

    def peek_u8(self) -> int:
        """The next byte, without consuming it."""
        if self.pos >= self._end:
            raise TruncatedError(f"need 1 byte at offset {self.pos}, 0 left")
        return self._data[self.pos]

    def u16(self) -> int:
        """Unsigned 16-bit, big endian (network order)."""
        return self._unpack(_U16BE)

    def u16le(self) -> int:
        """Unsigned 16-bit, little endian."""
        return self._unpack(_U16LE)

    def u24(self) -> int:
        """Unsigned 24-bit, big endian (HTTP/2 frame length)."""
        start = self._take(3)
        return int.from_bytes(self._data[start:start + 3], "big")

    def u24le(self) -> int:
        """Unsigned 24-bit, little endian (MySQL packet length)."""
        start = self._take(3)
        return int.from_bytes(self._data[start:start + 3], "little")

    def u32(self) -> int:
        """Unsigned 32-bit, big endian."""
        return self._unpack(_U32BE)

    def u32le(self) -> int:
        """Unsigned 32-bit, little endian."""
        return self._unpack(_U32LE)

    def u64(self) -> int:
        """Unsigned 64-bit, big endian."""
        return self._unpack(_U64BE)

    def u64le(self) -> int:
        """Unsigned 64-bit, little endian."""
        return self._unpack(_U64LE)

    def i16(self) -> int:
        """Signed 16-bit, big endian (Kafka INT16)."""
        return self._unpack(_I16BE)

    def i32(self) -> int:
        """Signed 32-bit, big endian (Kafka INT32)."""
        return self._unpack(_I32BE)

    def i64(self) -> int:
        """Signed 64-bit, big endian (Kafka INT64, Dubbo request id)."""
        return self._unpack(_I64BE)

    def i16le(self) -> int:
        """Signed 16-bit, little endian."""
        return self._unpack(_I16LE)

    def i32le(self) -> int:
        """Signed 32-bit, little endian."""
        return self._unpack(_I32LE)

    def i64le(self) -> int:
        """Signed 64-bit, little endian."""
        return self._unpack(_I64LE)

    def f64(self) -> float:
        """IEEE double, big endian (hessian2, Kafka FLOAT64)."""
        start = self._take(8)
        value: float = _F64BE.unpack_from(self._data, start)[0]
        return value

    # -- variable-length integers --------------------------------------------
    def varint(self, max_bytes: int = MAX_VARINT_BYTES) -> int:
        """Unsigned LEB128 (Kafka UNSIGNED_VARINT, protobuf).

        Raises:
            TruncatedError: the bytes end inside the varint.
            LimitExceededError: more than ``max_bytes`` continuation bytes.
        """
        value = shift = 0
        for _ in range(max_bytes):
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
        raise LimitExceededError(f"varint longer than {max_bytes} bytes")

    def zigzag(self, max_bytes: int = MAX_VARINT_BYTES) -> int:
        """Signed zigzag varint (Kafka VARINT/VARLONG, in record batches)."""
        raw = self.varint(max_bytes)
        return (raw >> 1) ^ -(raw & 1)

    def mqtt_varint(self) -> int:
        """MQTT Variable Byte Integer: little-endian base-128, at most 4 bytes."""
        return self.varint(max_bytes=4)

    # -- byte strings ----------------------------------------------------------
    def bytes(self, n: int) -> builtins.bytes:
        """Exactly ``n`` bytes (copied)."""
        start = self._take(n)
        return builtins.bytes(self._data[start:start + n])

    def skip(self, n: int) -> None:
        """Step over ``n`` bytes."""
        self._take(n)

    def rest(self) -> builtins.bytes:
        """Everything up to the current end."""
        return self.bytes(self.remaining)

    def counted_bytes(self, length: Callable[[], int]) -> builtins.bytes:
        """Bytes preceded by a length read with ``length`` (e.g. ``cur.u16``)."""
        return self.bytes(length())

    def string(self, n: int, encoding: str = "utf-8") -> str:
        """``n`` bytes decoded as text; undecodable bytes become U+FFFD."""
        return self.bytes(n).decode(encoding, "replace")

    def counted_string(self, length: Callable[[], int], encoding: str = "utf-8") -> str:
        """Text preceded by a length read with ``length``."""
        return self.string(length(), encoding)

    def cstring(self) -> builtins.bytes:
        """Bytes up to a NUL (consumed, not returned), as MySQL handshakes use."""
        data = self._data
        for i in range(self.pos, self._end):
            if data[i] == 0:
                value = builtins.bytes(data[self.pos:i])
                self.pos = i + 1
                return value
        raise TruncatedError(f"no NUL terminator after offset {self.pos}")

    # -- structure ---------------------------------------------------------------
    @contextmanager
    def restrict_to(self, n: int) -> Iterator[Cursor]:
        """Confine reads to the next ``n`` bytes; on exit, step past all of them.

        Raises:
            TruncatedError: fewer than ``n`` bytes are left, or a read inside
                the block runs past the ``n`` bytes.
        """
        if n < 0 or n > self.remaining:
            raise TruncatedError(f"need {n} bytes at offset {self.pos}, {self.remaining} left")
        saved_end = self._end
        self._end = self.pos + n
        try:
            yield self
            self.pos = self._end
        finally:
            self._end = saved_end

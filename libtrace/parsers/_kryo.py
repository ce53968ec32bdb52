"""The sliver of Kryo that a Dubbo request prefix needs: strings.

Theory of operation: Dubbo's Kryo serialization writes each ``writeUTF`` with
Kryo's ``Output.writeString``, so a request body starts with four such strings
(Dubbo version, service path, service version, method name), as with hessian2.
Kryo writes a string in one of two forms, told apart by the first byte's high
bit:

- clear: ASCII, each character one byte, the last one with its high bit set
  (Kryo uses it for ASCII strings of two characters and more);
- set: a "flagged" variable-length count (bit 6 of the first byte says another
  byte follows, bits 0-5 are the low bits; then seven bits per byte), which is
  the character count plus one (0 is null, 1 the empty string), then the
  characters in UTF-8.

:func:`read_string` decodes one (or null) through the bounded :class:`Cursor`;
:func:`encode_string` is the inverse, for the tests and the fixture generator.
Specification: Kryo's ``Output.writeString`` / ``Input.readString``.
"""

from __future__ import annotations

from ._cursor import Cursor
from ._errors import LimitExceededError, MalformedError
from ._events import clip

#: Characters of one string read at most (a service path or method is far shorter).
MAX_STRING_CHARS = 65536


def _flagged_count(cur: Cursor) -> int:
    first = cur.u8()
    value, more = first & 0x3F, first & 0x40
    shift = 6
    while more:
        if shift > 27:
            raise MalformedError("Kryo count longer than five bytes")
        byte = cur.u8()
        value |= (byte & 0x7F) << shift
        more, shift = byte & 0x80, shift + 7
    return value


def read_string(cur: Cursor) -> str | None:
    """One Kryo string at the cursor, clipped; None for Kryo's null.

    Raises:
        TruncatedError: the bytes end inside it.
        MalformedError, LimitExceededError: not a Kryo string, or too long.
    """
    if not cur.peek_u8() & 0x80:  # ASCII, the last byte marked
        chars = bytearray()
        while True:
            byte = cur.u8()
            chars.append(byte & 0x7F)
            if byte & 0x80:
                return clip(chars.decode("ascii"))
            if len(chars) >= MAX_STRING_CHARS:
                raise LimitExceededError(f"Kryo string over {MAX_STRING_CHARS} characters")
    count = _flagged_count(cur) - 1
    if count < 0:
        return None
    if count > MAX_STRING_CHARS:
        raise LimitExceededError(f"Kryo string of {count} characters")
    # UTF-8: read lead byte by lead byte until ``count`` characters
    data = bytearray()
    for _ in range(count):
        lead = cur.u8()
        extra = 0 if lead < 0x80 else 1 if lead < 0xE0 else 2 if lead < 0xF0 else 3
        data.append(lead)
        data += cur.bytes(extra)
    try:
        return clip(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise MalformedError("Kryo string is not UTF-8") from None


def encode_string(value: str | None) -> bytes:
    """``value`` as Kryo's ``Output.writeString`` writes it."""
    if value is None:
        return b"\x80"
    if len(value) > 1 and value.isascii() and len(value) < 64:
        data = bytearray(value.encode("ascii"))
        data[-1] |= 0x80
        return bytes(data)
    count = len(value) + 1
    out = bytearray([0x80 | (count & 0x3F) | (0x40 if count >> 6 else 0)])
    count >>= 6
    while count:
        out.append((count & 0x7F) | (0x80 if count >> 7 else 0))
        count >>= 7
    return bytes(out) + value.encode("utf-8")

"""The sliver of Hessian 2.0 that a Dubbo request prefix needs: strings, ints, null.

Theory of operation: a Dubbo 2 request body (hessian2 serialization) starts
with four strings — Dubbo version, service path, service version, method
name — before the argument types and arguments, which libtrace does not
read.  :func:`read_string` decodes one string (or null) through the bounded
:class:`Cursor`: a short (``0x00-0x1f``), medium (``0x30-0x33``) or chunked
(``R`` ... ``S``) string whose length counts UTF-16 units, not bytes, so the
UTF-8 bytes are walked lead byte by lead byte.  At most
:data:`MAX_STRING_CHUNKS` chunks (each at most 65535 units) are read, and the
text kept is clipped.  :func:`read_int` decodes the compact and full
int forms (the response type that starts a response body).

The encoders are the inverse for the few forms above; the tests, the fixture
recorder and its fake Dubbo server use them.  Specification:
http://hessian.caucho.com/doc/hessian-serialization.html
"""

from __future__ import annotations

from ._cursor import Cursor
from ._errors import LimitExceededError, MalformedError
from ._events import clip

#: Chunks of one chunked string; real encoders write 32 KiB-unit chunks, so a
#: service path or method name never needs more than one.
MAX_STRING_CHUNKS = 64

NULL = 0x4E          # 'N'
FINAL_CHUNK = 0x53   # 'S'
CHUNK = 0x52         # 'R'
INT32 = 0x49         # 'I'


def _utf8(cur: Cursor, count: int, out: bytearray) -> None:
    units = 0
    while units < count:
        lead = cur.u8()
        out.append(lead)
        if lead < 0x80:
            units += 1
        elif 0xC0 <= lead < 0xE0:
            out += cur.bytes(1)
            units += 1
        elif 0xE0 <= lead < 0xF0:
            out += cur.bytes(2)
            units += 1
        elif 0xF0 <= lead < 0xF8:
            out += cur.bytes(3)
            units += 2
        else:
            raise MalformedError(f"invalid UTF-8 lead byte {lead:#x} in hessian string")


def read_string(cur: Cursor) -> str | None:
    """One hessian2 string, or ``None`` for null.

    Raises:
        TruncatedError: the bytes end inside the string.
        MalformedError: the next value is not a string or null.
        LimitExceededError: more than :data:`MAX_STRING_CHUNKS` chunks.
    """
    out = bytearray()
    for _ in range(MAX_STRING_CHUNKS):
        code = cur.u8()
        if code == NULL and not out:
            return None
        if code <= 0x1F:
            _utf8(cur, code, out)
            return _text(out)
        if 0x30 <= code <= 0x33:
            _utf8(cur, ((code - 0x30) << 8) | cur.u8(), out)
            return _text(out)
        if code in (FINAL_CHUNK, CHUNK):
            _utf8(cur, cur.u16(), out)
            if code == FINAL_CHUNK:
                return _text(out)
            continue
        raise MalformedError(f"hessian code {code:#x} is not a string")
    raise LimitExceededError(f"hessian string in more than {MAX_STRING_CHUNKS} chunks")


def _text(data: bytearray) -> str:
    return clip(bytes(data).decode("utf-8", "replace"))


def read_int(cur: Cursor) -> int:
    """One hessian2 int (compact or ``I`` form).

    Raises:
        TruncatedError: the bytes end inside the int.
        MalformedError: the next value is not an int.
    """
    code = cur.u8()
    if 0x80 <= code <= 0xBF:
        return code - 0x90
    if 0xC0 <= code <= 0xCF:
        return ((code - 0xC8) << 8) | cur.u8()
    if 0xD0 <= code <= 0xD7:
        return ((code - 0xD4) << 16) | cur.u16()
    if code == INT32:
        return cur.i32()
    raise MalformedError(f"hessian code {code:#x} is not an int")


# -- encoders (tests, fixtures, the fake server) ------------------------------------------------
def encode_string(text: str | None) -> bytes:
    """``text`` as hessian2 (short, medium or chunked form); ``None`` as null."""
    if text is None:
        return bytes([NULL])
    out = bytearray()
    # split into chunks of at most 65535 UTF-16 units, never inside a surrogate pair
    pieces: list[str] = []
    current: list[str] = []
    count = 0
    for ch in text:
        width = 2 if ord(ch) > 0xFFFF else 1
        if count + width > 0xFFFF:
            pieces.append("".join(current))
            current, count = [], 0
        current.append(ch)
        count += width
    pieces.append("".join(current))
    for i, piece in enumerate(pieces):
        length = len(piece.encode("utf-16-le")) // 2
        data = piece.encode("utf-8")
        if i < len(pieces) - 1:
            out += bytes([CHUNK]) + length.to_bytes(2, "big") + data
        elif length <= 0x1F:
            out += bytes([length]) + data
        elif length <= 0x3FF:
            out += bytes([0x30 + (length >> 8), length & 0xFF]) + data
        else:
            out += bytes([FINAL_CHUNK]) + length.to_bytes(2, "big") + data
    return bytes(out)


def encode_int(value: int) -> bytes:
    """``value`` (a 32-bit int) in the most compact hessian2 form."""
    if -0x10 <= value <= 0x2F:
        return bytes([value + 0x90])
    if -0x800 <= value <= 0x7FF:
        return bytes([0xC8 + (value >> 8), value & 0xFF])
    if -0x40000 <= value <= 0x3FFFF:
        return bytes([0xD4 + (value >> 16)]) + (value & 0xFFFF).to_bytes(2, "big")
    return bytes([INT32]) + value.to_bytes(4, "big", signed=True)

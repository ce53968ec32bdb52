"""A parser target's input: a script of feeds, so that cuts and interleaving are fuzzed too.

Byte 0 sets the run: bit 0 ``mid_stream``, bit 1 leave the directions open at
the end (no ``b""``), bit 2 UDP (for the protocols that run over it).  Then
operations follow until the input ends, each one header byte ``h``:

* ``h >> 7``: the direction (0 request, 1 response);
* ``(h >> 5) & 3``: the operation: 0 data, 1 gap, 2 end of stream, 3 repeated data;
* data: a 2-byte big-endian length, then that many bytes (fewer if the input
  ends first); repeated data: the same, fed ``1 << (h & 0x07)`` times over,
  in one piece (bit 4 of ``h``) or in as many pieces;
* gap: a 2-byte big-endian size, shifted left by ``h & 0x1F`` bits.

Repetition lets a few bytes of input reach the buffer limits; everything fed
in one run is capped at ``max_fed`` bytes and :data:`MAX_OPS` pieces so that a
run stays short.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

MID_STREAM, OPEN_AT_END, UDP = 1, 2, 4
DATA, GAP, EOF, REPEAT = 0, 1, 2, 3
DIRECTIONS = ("request", "response")
#: Operations (pieces) in one run at most: each one pulls the parser's events.
MAX_OPS = 64


class Op(NamedTuple):
    direction: str
    kind: int  #: DATA, GAP or EOF (a repeat becomes DATA pieces)
    data: bytes = b""
    size: int = 0  #: a gap's


def parse(data: bytes, max_fed: int) -> tuple[int, Iterator[Op]]:
    """The flags byte and the operations of a script (lazily: a run stops when it likes)."""
    if not data:
        return 0, iter(())
    return data[0], _ops(memoryview(data)[1:], max_fed)


def _ops(view: memoryview, max_fed: int) -> Iterator[Op]:
    pos, fed, count = 0, 0, 0
    while pos < len(view) and count < MAX_OPS:
        count += 1
        head = view[pos]
        direction, kind = DIRECTIONS[head >> 7], (head >> 5) & 3
        number = int.from_bytes(view[pos + 1:pos + 3], "big")
        pos += 3
        if kind == EOF:
            pos -= 2  # no length
            yield Op(direction, EOF)
        elif kind == GAP:
            yield Op(direction, GAP, size=max(1, number << (head & 0x1F)))
        else:
            piece = bytes(view[pos:pos + number])
            pos += number
            if not piece:
                continue
            if fed + len(piece) > max_fed:
                return
            times = 1 if kind == DATA else 1 << (head & 0x07)
            times = min(times, (max_fed - fed) // len(piece))
            fed += times * len(piece)
            if kind == REPEAT and head & 0x10:
                yield Op(direction, DATA, piece * times)
            else:
                for _ in range(min(times, MAX_OPS - count + 1)):
                    count += 1
                    yield Op(direction, DATA, piece)


def encode(flags: int, ops: list[Op]) -> bytes:
    """The script of ``ops`` (DATA, GAP with a size below 65536, EOF): seeds and tests."""
    out = bytearray([flags])
    for op in ops:
        head = DIRECTIONS.index(op.direction) << 7 | op.kind << 5
        if op.kind == EOF:
            out.append(head)
        elif op.kind == GAP:
            out += struct.pack(">BH", head, op.size)
        else:
            for start in range(0, len(op.data), 0xFFFF):
                piece = op.data[start:start + 0xFFFF]
                out += struct.pack(">BH", head, len(piece)) + piece
    return bytes(out)

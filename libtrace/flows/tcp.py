"""TCP reassembly of one direction, by sequence number.

Theory of operation: sequence numbers are unwrapped into 64-bit stream
offsets relative to the first one seen (the SYN's, when captured).  A segment
at the next expected offset is released at once, with any held-back segments
that now follow; a retransmission (entirely before it) is dropped; an
overlap is trimmed; a segment past a hole is held back.  Held-back bytes are
bounded by :data:`MAX_OUT_OF_ORDER_BYTES`, and by time: a hole still open
:data:`MAX_HOLE_WAIT_NS` of capture time after the bytes beyond it arrived
(a retransmission comes within a few round trips) is given up (:meth:`TcpStream.expire`),
so records after a lost segment come out in time order rather than at the
capture's end.  A hole given up, or open at the end, is declared a gap of
known size, which the parser treats as a resync.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .chunk import Chunk

#: Bytes held back per direction waiting for a hole to fill: a few windows' worth.
MAX_OUT_OF_ORDER_BYTES = 4 * 1024 * 1024
#: Capture time a hole may stay open once bytes beyond it arrived.
MAX_HOLE_WAIT_NS = 1_000_000_000
_MOD = 1 << 32
_HALF = 1 << 31


@dataclass(slots=True)
class TcpStream:
    """One direction of a TCP connection."""

    base: int | None = None
    next: int = 0
    fin_at: int | None = None
    pending: dict[int, tuple[bytes, int]] = field(default_factory=dict)
    pending_bytes: int = 0
    eof: bool = False

    def _offset(self, seq: int) -> int:
        assert self.base is not None
        expected = (self.base + self.next) % _MOD
        delta = (seq - expected + _HALF) % _MOD - _HALF
        return self.next + delta

    def syn(self, seq: int) -> None:
        """The SYN fixes the start: data begins at seq + 1."""
        if self.base is None:
            self.base = (seq + 1) % _MOD

    def segment(self, seq: int, data: bytes, ts_ns: int, fin: bool = False) -> list[Chunk]:
        """Take one segment; return what is now in order."""
        if self.base is None:
            self.base = seq
        start = self._offset(seq)
        if fin:
            self.fin_at = start + len(data)
        out: list[Chunk] = []
        if data:
            end = start + len(data)
            if end > self.next:
                if start < self.next:
                    data, start = data[self.next - start:], self.next
                if start == self.next:
                    out.append(Chunk(ts_ns, data))
                    self.next = end
                    self._release(out)
                elif start not in self.pending or len(self.pending[start][0]) < len(data):
                    self.pending_bytes += len(data) - len(self.pending.get(start, (b"", 0))[0])
                    self.pending[start] = (data, ts_ns)
                    while self.pending_bytes > MAX_OUT_OF_ORDER_BYTES:
                        self._skip_hole(out)
        self._check_fin()
        return out

    def expire(self, now_ns: int) -> list[Chunk]:
        """Give up holes whose later bytes have waited longer than :data:`MAX_HOLE_WAIT_NS`."""
        out: list[Chunk] = []
        while self.pending and now_ns - min(ts for _, ts in self.pending.values()) > (
                MAX_HOLE_WAIT_NS):  # fmt: skip
            self._skip_hole(out)
        self._check_fin()
        return out

    def give_up(self) -> list[Chunk]:
        """Stop waiting for the holes (a memory budget says so): release everything
        held back, holes as gaps; the stream goes on."""
        out: list[Chunk] = []
        while self.pending:
            self._skip_hole(out)
        self._check_fin()
        return out

    def flush(self) -> list[Chunk]:
        """The capture ended: release everything held back, holes as gaps."""
        out = self.give_up()
        self.eof = True
        return out

    def _skip_hole(self, out: list[Chunk]) -> None:
        first = min(self.pending)
        if first > self.next:
            out.append(Chunk(self.pending[first][1], gap=first - self.next))
            self.next = first
        self._release(out)

    def _release(self, out: list[Chunk]) -> None:
        while self.pending:
            ready = [o for o in self.pending if o <= self.next]
            if not ready:
                return
            for offset in sorted(ready):
                data, ts = self.pending.pop(offset)
                self.pending_bytes -= len(data)
                if offset + len(data) > self.next:
                    out.append(Chunk(ts, data[self.next - offset:]))
                    self.next = offset + len(data)

    def _check_fin(self) -> None:
        if self.fin_at is not None and self.next >= self.fin_at and not self.pending:
            self.eof = True

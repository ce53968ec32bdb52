"""One memory budget for all the connections of a front-end.

Each parser bounds its own buffers (``parsers/_limits.py``), but nothing in a
parser bounds their sum: thousands of connections, each sending the start of
a message that claims megabytes, would each buffer up to the parser's limit.
:class:`MemoryBudget` bounds the sum.  A front-end tells it how many bytes it
fed (:meth:`grow`); once that growth since the last look exceeds a slice of
the budget, the front-end measures what its conversations really hold and
asks :meth:`over` which to cut back: the largest first, until the total is
under the low-water mark.  Cutting a conversation back drops its buffers as
a gap (its parser reports a desync, records already made are kept), so memory
stays under the budget plus what the bytes of one look can add, and
connections that buffer little are never touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, TypeVar

#: Bytes all connections of a front-end may buffer: small machines first.
DEFAULT_BUDGET_BYTES = 64 * 1024 * 1024
#: A look at the real totals once this share of the budget was fed since the last.
LOOK_EVERY: Final = 1 / 8
#: Cutting back goes on until the total is under this share of the budget.
LOW_WATER = 3 / 4

T = TypeVar("T")


@dataclass(slots=True)
class MemoryBudget:
    """The budget, its bookkeeping and its counters.

    (Generic in :meth:`over` only: mypyc, which compiles this module, cannot
    build a generic dataclass.)

    Attributes:
        limit_bytes: what all connections may hold at once.
        cuts: conversations cut back so far.
        cut_bytes: the bytes those held.
    """

    limit_bytes: int = DEFAULT_BUDGET_BYTES
    cuts: int = 0
    cut_bytes: int = 0
    _grown: int = field(default=0, repr=False)

    def grow(self, size: int) -> bool:
        """``size`` more bytes were fed; True when it is time to look (:meth:`over`)."""
        self._grown += size
        return self._grown >= self.limit_bytes * LOOK_EVERY

    def over(self, holders: Iterable[tuple[int, T]]) -> list[T]:
        """Of ``(bytes held, holder)`` pairs, the holders to cut back (largest
        first), if the total is over the budget; counted as cut."""
        self._grown = 0
        sized = [(held, holder) for held, holder in holders if held]
        total = sum(held for held, _ in sized)
        if total <= self.limit_bytes:
            return []
        out = []
        sized.sort(key=lambda pair: pair[0], reverse=True)
        for held, holder in sized:
            if total <= self.limit_bytes * LOW_WATER:
                break
            out.append(holder)
            total -= held
            self.cuts += 1
            self.cut_bytes += held
        return out

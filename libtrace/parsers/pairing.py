"""Request/response pairing: messages in, :class:`Record` out.

Theory of operation: one :class:`Pairer` per connection.  A request whose
:attr:`~Message.key` is not ``None`` waits in a dict under that key (HTTP/2
stream, DNS id, Kafka correlation id, Dubbo request id); a request without a
key waits in a FIFO queue (HTTP/1, Redis, MySQL), and a keyless response takes
the oldest.  A :class:`Desync` empties the FIFO queue (emitting its requests
as ``unknown``) because a response may have been lost with the bytes.  A
message whose :attr:`~Message.expects_response` is false (one-way request,
server push) becomes a record at once.  :meth:`Pairer.flush` emits what is
left: a request older than ``timeout_ns`` relative to the last timestamp seen
is ``timeout``, a younger one ``unknown``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Final

from ._events import REQUEST, Desync, Event, Message, Record, Status
from ._limits import MAX_PENDING_REQUESTS

#: A request unanswered this long before the end of the capture timed out.
DEFAULT_TIMEOUT_NS = 5 * 1_000_000_000
#: Taken requests kept at the FIFO queue's head until they are at least this
#: many and half of it (then dropped in one move, not one by one).
_FIFO_COMPACT: Final = 32


class Pairer:
    """Pair the events of one connection into records.

    Args:
        timeout_ns: how long a request may wait before ``flush`` calls it a timeout.
        max_pending: requests kept waiting; the oldest beyond this is emitted as unknown.
    """

    def __init__(self, *, timeout_ns: int = DEFAULT_TIMEOUT_NS,
                 max_pending: int = MAX_PENDING_REQUESTS) -> None:
        self.timeout_ns = timeout_ns
        self.max_pending = max_pending
        self._keyed: OrderedDict[Hashable, Message] = OrderedDict()
        #: the keyless requests waiting, oldest first: ``_fifo[_fifo_head:]``.  A
        #: list and an index rather than a deque: compiled, a list's append and
        #: indexing are C calls, a deque's append and popleft Python method calls
        #: (~230 instructions each: pairing a Redis record cost 13 % more)
        self._fifo: list[Message] = []
        self._fifo_head = 0
        self.last_ts = 0

    def add(self, event: Event) -> list[Record]:
        """Take one parser event; return the records it completes."""
        if event.ts_ns > self.last_ts:
            self.last_ts = event.ts_ns
        if isinstance(event, Desync):
            if event.kept_order:  # the cut message came out partial: the order holds
                return []
            return [self._alone(m, Status.UNKNOWN) for m in self._drain_fifo()]
        if event.direction is REQUEST:
            return self._request(event)
        return self._response(event)

    def flush(self, now_ns: int | None = None) -> list[Record]:
        """Emit every waiting request (end of capture or connection)."""
        now = self.last_ts if now_ns is None else now_ns
        waiting = sorted([*self._keyed.values(), *self._drain_fifo()], key=lambda m: m.ts_ns)
        self._keyed.clear()
        return [self._alone(m, Status.TIMEOUT if now - m.ts_ns > self.timeout_ns
                            else Status.UNKNOWN) for m in waiting]

    # -- internals ---------------------------------------------------------------------
    def _request(self, message: Message) -> list[Record]:
        if not message.expects_response:
            return [self._alone(message, Status.OK)]
        out: list[Record] = []
        key = message.key
        if key is None:
            self._fifo.append(message)
            if len(self._fifo) - self._fifo_head > self.max_pending:
                oldest = self._pop_oldest()
                assert oldest is not None  # more than max_pending wait
                out.append(self._alone(oldest, Status.UNKNOWN))
            return out
        previous = self._keyed.pop(key, None)
        if previous is not None:  # the key was reused: the old request got no answer
            out.append(self._alone(previous, Status.UNKNOWN))
        self._keyed[key] = message
        if len(self._keyed) > self.max_pending:
            out.append(self._alone(self._keyed.popitem(last=False)[1], Status.UNKNOWN))
        return out

    def _response(self, message: Message) -> list[Record]:
        if not message.expects_response:
            return [self._alone(message, message.outcome)]
        key = message.key
        if key is None:
            request = self._pop_oldest()
        else:
            request = self._keyed.pop(key, None)
            loose = message.loose_key
            if request is None and loose is not None:
                waiting = next((k for k, m in self._keyed.items() if m.loose_key == loose), None)
                request = self._keyed.pop(waiting) if waiting is not None else None
        if request is None:
            return [self._alone(message, message.outcome)]
        return [Record(protocol=request.protocol, ts_ns=request.ts_ns,
                       latency_ns=max(0, message.ts_ns - request.ts_ns),
                       status=message.outcome, request=request, response=message)]

    def _pop_oldest(self) -> Message | None:
        """The oldest keyless request, taken out of the queue; None if none waits."""
        fifo, head = self._fifo, self._fifo_head
        if head >= len(fifo):
            return None
        oldest = fifo[head]
        head += 1
        if head == len(fifo):  # emptied, as after most responses: start over
            fifo.clear()
            head = 0
        elif head >= _FIFO_COMPACT and 2 * head >= len(fifo):
            del fifo[:head]  # the taken head is the larger part: drop it at once
            head = 0
        self._fifo_head = head
        return oldest

    def _drain_fifo(self) -> list[Message]:
        drained = self._fifo[self._fifo_head:]
        self._fifo.clear()
        self._fifo_head = 0
        return drained

    @staticmethod
    def _alone(message: Message, status: Status) -> Record:
        is_request = message.direction is REQUEST
        return Record(protocol=message.protocol, ts_ns=message.ts_ns, latency_ns=None,
                      status=status, request=message if is_request else None,
                      response=None if is_request else message)

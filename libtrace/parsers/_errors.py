"""The parsers' exceptions: one family under :class:`~libtrace.errors.ProtocolError`.

``next_event()`` turns these into :class:`~libtrace.parsers.Desync` events and
resynchronises, so a caller that feeds arbitrary bytes sees no exception at
all.  They escape only from the lower layers used directly: the
:class:`~libtrace.parsers.Cursor`, :func:`~libtrace.parsers.parser_for` and
the protocol-specific decoding helpers.
"""

from __future__ import annotations

from ..errors import ProtocolError


class TruncatedError(ProtocolError, ValueError):
    """The message ends before its fields do."""


class MalformedError(ProtocolError, ValueError):
    """The bytes do not follow the protocol."""


class LimitExceededError(ProtocolError, ValueError):
    """A length, count or nesting depth in the message exceeds libtrace's limits."""


class UnknownProtocolError(ProtocolError, KeyError):
    """No parser is registered under that protocol name."""

    def __str__(self) -> str:
        # KeyError would print the repr of the message.
        return str(self.args[0])

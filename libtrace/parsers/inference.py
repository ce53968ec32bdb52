"""Protocol inference: from the first bytes of one direction, which protocol is it?

Theory of operation: each protocol has one signature function (its spec's,
beside its parser: ``_<name>.py``) that looks at the first bytes of a
direction and returns a confidence in [0, 1] and which side spoke them
(request or response), or ``None``.  :func:`infer` runs those of every
registered protocol and keeps the best.  Signatures check structure, not
just a magic number: a Kafka request must have a size that fits, a known API
key, a sane version and client id; a MySQL greeting must carry protocol 10
and a NUL-terminated version.  A port only ever *raises* the confidence of a
protocol that matched on its bytes (by :data:`PORT_BONUS`); it never makes a
protocol out of nothing, so unknown traffic stays unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._events import Direction
from ._limits import MAX_INFERENCE_BYTES
from ._spec import Match
from .registry import SPECS

__all__ = ["MIN_CONFIDENCE", "PORT_BONUS", "UNKNOWN", "Inference", "Match", "infer"]

#: What a matching port adds to a byte-level match.
PORT_BONUS = 0.1
#: Below this, :func:`infer` reports no protocol.
MIN_CONFIDENCE = 0.3


@dataclass(frozen=True, slots=True, kw_only=True)
class Inference:
    """The verdict on one direction's first bytes."""

    protocol: str | None
    confidence: float
    #: which side sent the bytes, when the signature can tell
    direction: Direction | None = None


UNKNOWN = Inference(protocol=None, confidence=0.0)


def infer(data: bytes, *, transport: str = "tcp", ports: tuple[int, ...] = ()) -> Inference:
    """Guess the protocol of a direction from its first bytes.

    Args:
        data: the first bytes seen in one direction (a UDP datagram for UDP).
        transport: ``"tcp"`` or ``"udp"``.
        ports: the connection's ports; a known port raises confidence a little.

    Returns:
        The best match, or ``protocol=None`` when nothing reaches
        :data:`MIN_CONFIDENCE`.
    """
    data = bytes(data[:MAX_INFERENCE_BYTES])
    udp = transport == "udp"
    best = UNKNOWN
    for name, spec in SPECS.items():
        match = spec.signature(data, udp)
        if match is None:
            continue
        confidence, direction = match
        if spec.ports.intersection(ports):
            confidence = min(1.0, confidence + PORT_BONUS)
        if confidence > best.confidence:
            best = Inference(protocol=name, confidence=round(confidence, 3), direction=direction)
    return best if best.confidence >= MIN_CONFIDENCE else UNKNOWN

"""Comparing two multisets of records on their protocol fields.

Theory of operation: a record is reduced to its *protocol key*, the JSON text
of the fields that say what was exchanged, :data:`PROTOCOL_FIELDS`; two
records agree when their keys are equal.  Left out, on purpose:

- ``ts_ns`` and ``latency_ns``: the tracer stamps syscalls, tcpdump packets,
  with different clocks and at different moments;
- ``client``: the client's ephemeral port (and, seen from a container, the
  address) says nothing about the protocol; ``server`` is the scenario's
  endpoint, by which both sides are already filtered;
- what only a live record has (``pid``, ``comm``, ``side``, ``tls``,
  ``container``): the wire cannot know it; attribution is checked apart.

Every field inside ``request`` and ``response`` is kept, ids included (a
DNS query id, a Kafka correlation id): both captures saw the same bytes, so
the same ids.  Records are compared as multisets: a pipelined batch of
identical commands must come out as many times on both sides.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: The fields two records must agree on: the protocol's, not time or addresses.
PROTOCOL_FIELDS = ("type", "protocol", "status", "request", "response")
#: The ends of a connection a live record can be seen from.
SIDES = ("client", "server")


def protocol_key(record: Mapping[str, Any]) -> str:
    """The record reduced to :data:`PROTOCOL_FIELDS`, as canonical JSON text."""
    return json.dumps({k: record.get(k) for k in PROTOCOL_FIELDS}, sort_keys=True)


def protocol_view(records: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """The multiset of records, each reduced to its protocol key."""
    return Counter(protocol_key(r) for r in records)


@dataclass(frozen=True, slots=True)
class Difference:
    """Two multisets of keys, split into what both hold and what only one holds.

    Attributes:
        matched: key → times found on both sides.
        only_left: key → times found only on the left (beyond the right's count).
        only_right: key → times found only on the right.
    """

    matched: Counter[str]
    only_left: Counter[str]
    only_right: Counter[str]

    @classmethod
    def of(cls, left: Counter[str], right: Counter[str]) -> Difference:
        return cls(left & right, left - right, right - left)

    @property
    def agrees(self) -> bool:
        """True when neither side holds a record the other lacks."""
        return not self.only_left and not self.only_right


def compare_sides(
    traced: Iterable[Mapping[str, Any]], pcap: Iterable[Mapping[str, Any]]
) -> dict[str, Difference]:
    """Per side (client, server), the traced records against the pcap's (left: trace).

    A connection with both ends on this host is traced twice, once per side;
    each side must equal the wire on its own, so a side missing from the trace
    shows up as every pcap record only in the pcap.
    """
    wire = protocol_view(pcap)
    by_side: dict[str, list[Mapping[str, Any]]] = {side: [] for side in SIDES}
    for record in traced:
        by_side.setdefault(str(record.get("side")), []).append(record)
    return {side: Difference.of(protocol_view(rs), wire) for side, rs in by_side.items()}


def counted(keys: Counter[str]) -> list[dict[str, Any]]:
    """A multiset as JSON: ``[{"record": {...}, "count": n}, ...]`` sorted by key."""
    return [{"record": json.loads(key), "count": n} for key, n in sorted(keys.items())]

"""What one differential check found, and its verdict."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import reduce
from operator import and_
from typing import Any

from ..errors import ExitCode
from ._compare import SIDES, Difference, counted

#: Exit codes of ``libtrace check``: agreement, a difference (or loss), and bad input or a
#: scenario that could not run.


@dataclass(slots=True, kw_only=True)
class CheckResult:
    """One scenario traced and captured at once, compared.

    Attributes:
        scenario, backend: what ran where; ``server`` is its ``host:port``.
        sides: per side, the traced records (left) against the pcap's (right).
        pcap_records: records parsed from the capture.
        traced_records: traced records per side.
        lost: events the kernel could not hand over (the tracer's count).
        missed: tracer program runs the kernel skipped (another program was
            active on the CPU): the trace may lack bytes without a gap.
        events: events the tracer delivered.
        pipeline: the record pipeline's counters (gaps, desyncs, …).
        containers: per side, the distinct ``container`` values of its records.
        service_container: the container the server ran in (``None`` for a process).
        expected: the server side against the committed expected records, or ``None``
            when the scenario has none.
        seconds: wall time from the service's start to the verdict.
        pcap: where the capture was kept (``None``: deleted).
    """

    scenario: str
    backend: str
    server: str
    sides: dict[str, Difference]
    pcap_records: int
    traced_records: dict[str, int]
    lost: int
    events: int
    missed: int = 0
    pipeline: dict[str, int]
    containers: dict[str, list[dict[str, Any] | None]]
    service_container: dict[str, Any] | None
    expected: Difference | None = None
    #: the wire's records in the expected projection: what ``--write-expected`` writes
    wire_expected: Counter[str] = field(default_factory=Counter)
    expected_path: str | None = None
    seconds: float = 0.0
    pcap: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        """Every side's records equal the wire's, and the wire saw traffic."""
        return self.pcap_records > 0 and all(d.agrees for d in self.sides.values())

    @property
    def attribution_ok(self) -> bool:
        """Server records name the service's container (or none); client records none."""
        want = self.service_container
        server = self.containers.get("server", [])
        if want is None:
            server_ok = server == [None]
        else:
            server_ok = [(c or {}).get("id") for c in server] == [want["id"]] and [
                (c or {}).get("name") for c in server
            ] == [want["name"]]
        return server_ok and self.containers.get("client", []) == [None]

    @property
    def ok(self) -> bool:
        """The verdict: the records agree, nothing was lost, attribution is right."""
        return self.agrees and self.lost == 0 and self.missed == 0 and self.attribution_ok

    @property
    def exit_code(self) -> int:
        return ExitCode.OK if self.ok else ExitCode.FAILED

    def to_json(self) -> dict[str, Any]:
        """The full comparison, JSON-ready (what ``--report`` writes and ``--json`` prints)."""
        sides = {
            side: {
                "agrees": diff.agrees,
                "records": self.traced_records.get(side, 0),
                "matched": sum(diff.matched.values()),
                "only_in_trace": counted(diff.only_left),
                "only_in_pcap": counted(diff.only_right),
            }
            for side, diff in self.sides.items()
        }
        # Matched on every side: what trace and wire agree on from both ends.
        matched = reduce(and_, (d.matched for d in self.sides.values())) if self.sides else None
        expected = None
        if self.expected is not None:
            expected = {
                "path": self.expected_path,
                "agrees": self.expected.agrees,
                "only_in_run": counted(self.expected.only_left),
                "only_in_expected": counted(self.expected.only_right),
            }
        return {
            "scenario": self.scenario, "backend": self.backend, "server": self.server,
            "ok": self.ok, "agrees": self.agrees, "lost": self.lost,
            "missed": self.missed,
            "attribution_ok": self.attribution_ok, "events": self.events,
            "pcap_records": self.pcap_records, "sides": sides,
            "matches": counted(matched) if matched is not None else [],
            "containers": self.containers, "service_container": self.service_container,
            "expected": expected, "pipeline": self.pipeline,
            "seconds": round(self.seconds, 3), "pcap": self.pcap, "notes": self.notes,
        }  # fmt: skip


def side_order(sides: dict[str, Difference]) -> list[str]:
    """Client and server first, then anything else a record claimed."""
    return [s for s in SIDES if s in sides] + sorted(set(sides) - set(SIDES))

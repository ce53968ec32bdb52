"""tshark as the independent oracle of libtrace's records.

Theory of operation: tshark dissects the capture (:mod:`._tshark`); a view
per protocol (:mod:`._views`) turns its PDUs into messages (sender, time of
the first byte, the fields tshark knows, named as libtrace names them) and
pairs them by the protocol's own rule or by tshark's own links (HTTP's
``request_in``, DNS's ``response_to``, Kafka's ``request_frame``).  Those
are the oracle's records.  :func:`compare` then matches libtrace's records
of the same capture one by one: same connection, same request and response
timestamps (so the latency too), equal fields on both sides, and the same
verdict on whether the exchange failed.  A message tshark could not decode
(its dissector lost the state, or does not know that message) is matched by
time only, and counted.

Nothing here is libtrace's parsing: the fields come from tshark's
dissectors, and the tables that name them are the protocols' specifications
(dnspython's for DNS).  ``python -m libtrace.services.record`` refuses to write a
fixture's expected records when this oracle disagrees with them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ...errors import LibtraceError
from .._session import analyze
from ._tshark import OracleUnavailable, dissect
from ._views import VIEWS, OracleRecord, View

__all__ = [
    "VIEWS",
    "Agreement",
    "OracleDisagrees",
    "OracleUnavailable",
    "compare",
    "oracle_records",
    "verified_records",
    "verify",
]

#: Disagreements listed in full; beyond, only counted.
MAX_LISTED = 12


@dataclass(slots=True)
class Agreement:
    """The outcome of :func:`compare` for one protocol of one capture."""

    protocol: str
    matched: int = 0  #: records on which both agree
    undecoded: int = 0  #: messages tshark could not decode (matched by time only)
    disagreements: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.disagreements

    def text(self) -> str:
        head = (f"{self.protocol}: {self.matched} records agree with tshark"
                f" ({self.undecoded} messages it could not decode)")  # fmt: skip
        if self.ok:
            return head
        listed = self.disagreements[:MAX_LISTED]
        more = len(self.disagreements) - len(listed)
        lines = [head, *[f"  {d}" for d in listed]]
        if more:
            lines.append(f"  ... and {more} more")
        return "\n".join(lines)


class OracleDisagrees(LibtraceError, ValueError):
    """tshark's records differ from libtrace's (the message lists the differences)."""


def verify(pcap: str, records: Iterable[dict[str, Any]]) -> list[Agreement]:
    """:func:`compare`, raising :class:`OracleDisagrees` unless every protocol agrees.

    Raises:
        OracleDisagrees: a record differs (the message lists how).
        OracleUnavailable: tshark is missing or failed.
    """
    agreements = compare(pcap, records)
    wrong = [a for a in agreements if not a.ok]
    if wrong:
        raise OracleDisagrees(
            f"{pcap}: tshark disagrees with libtrace's records\n"
            + "\n".join(a.text() for a in wrong)
        )
    return agreements


def verified_records(pcap: str) -> list[dict[str, Any]]:
    """``libtrace pcap --json``'s records of ``pcap``, as JSON reads them back, once
    :func:`verify` passed on them: what an expected-records file may hold.

    Raises:
        OracleDisagrees, OracleUnavailable: as :func:`verify`.
    """
    records = [json.loads(json.dumps(r.to_json())) for r in analyze(pcap)]
    verify(pcap, records)
    return records


def oracle_records(pcap: str, protocol: str, servers: Iterable[str]) -> list[OracleRecord]:
    """The records tshark's dissection gives for ``protocol`` on the ``servers``
    (``ip:port``) of ``pcap``."""
    view_cls = VIEWS[protocol]
    servers = set(servers)
    ports = sorted({s.rsplit(":", 1)[1] for s in servers})
    decode_as = [f"{t}.port=={p},{view_cls.dissector}" for p in ports
                 for t in view_cls.transports]  # fmt: skip
    conns: dict[tuple[str, str], View] = {}
    for pdu in dissect(pcap, view_cls.layer, decode_as, view_cls.split):
        by_server = view_cls.sent_by_server(pdu)
        if by_server is not None and (pdu.src if by_server else pdu.dst) in servers:
            # the message itself says which end sent it (a DNS response: the server,
            # also when it goes to a multicast group that queries are sent to)
            client, server = (pdu.dst, pdu.src) if by_server else (pdu.src, pdu.dst)
            sender = "server" if by_server else "client"
        elif pdu.dst in servers:
            client, server, sender = pdu.src, pdu.dst, "client"
        elif pdu.src in servers:
            client, server, sender = pdu.dst, pdu.src, "server"
        else:
            continue
        view = conns.get((client, server))
        if view is None:
            view = conns[(client, server)] = view_cls(client, server)
        if pdu.unclaimed:
            view.unclaimed(pdu, sender)
        else:
            view.pdu(pdu, sender)
    return [record for view in conns.values() for record in view.records()]


def _ours(record: dict[str, Any], view_cls: type[View]) -> OracleRecord:
    request, response = record["request"], record["response"]
    ts = record["ts_ns"]
    response_ts = ts + (record["latency_ns"] or 0) if request is not None else ts
    status = record["status"]
    return OracleRecord(
        client=record["client"], server=record["server"],
        request_ts=ts if request is not None else None,
        request=view_cls.ours(request, "request") if request is not None else None,
        response_ts=response_ts if response is not None else None,
        response=view_cls.ours(response, "response") if response is not None else None,
        failed=None if response is None else status not in ("ok",),
    )  # fmt: skip


def compare(pcap: str, records: Iterable[dict[str, Any]]) -> list[Agreement]:
    """Match ``records`` (``libtrace pcap --json`` of ``pcap``) with tshark's, per protocol.

    Raises:
        OracleUnavailable: tshark is missing or failed.
    """
    by_protocol: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record.get("type", "record") == "record":
            by_protocol.setdefault(record["protocol"], []).append(record)
    out = []
    for protocol, mine in sorted(by_protocol.items()):
        view_cls = VIEWS.get(protocol)
        if view_cls is None:
            continue  # tshark has no dissector for it (Dubbo 2)
        theirs = oracle_records(pcap, protocol, {r["server"] for r in mine})
        out.append(_match(protocol, [_ours(r, view_cls) for r in mine], theirs))
    return out


def _match(protocol: str, ours: list[OracleRecord], theirs: list[OracleRecord]) -> Agreement:
    agreement = Agreement(protocol)
    agreement.undecoded = sum((r.request_undecoded, r.response_undecoded).count(True)
                              for r in theirs)  # fmt: skip
    left = list(ours)
    for oracle in sorted(theirs, key=lambda r: (r.client, r.first_ts)):
        found = next((i for i, mine in enumerate(left) if oracle.agrees(mine)), None)
        if found is None:
            near = [m for m in left if oracle.same_place(m)]
            agreement.disagreements.append(
                f"tshark's {oracle.describe()} has no equal in libtrace's records"
                + (f"; libtrace has {near[0].describe()}" if near else "")
            )
            continue
        del left[found]
        agreement.matched += 1
    for mine in left:
        agreement.disagreements.append(f"libtrace's {mine.describe()} is not in tshark's")
    return agreement

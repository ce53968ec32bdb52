"""Pairer paths the pairing tests do not take."""

from __future__ import annotations

from libtrace.parsers import DnsQuery, DnsResponse, Pairer, Status


def test_beyond_max_pending_keyed_requests_the_oldest_goes_out_unanswered() -> None:
    pairer = Pairer(max_pending=2)
    queries = [DnsQuery(ts_ns=i, id=i, name="a.", qtype="A") for i in (1, 2, 3)]
    assert pairer.add(queries[0]) == [] and pairer.add(queries[1]) == []
    (dropped,) = pairer.add(queries[2])
    assert (dropped.request, dropped.response, dropped.status) == (queries[0], None, Status.UNKNOWN)
    # the two kept still pair with their answers
    answers = [DnsResponse(ts_ns=10 + i, id=i, name="a.", qtype="A", rcode="NOERROR")
               for i in (3, 2)]  # fmt: skip
    records = [r for a in answers for r in pairer.add(a)]
    assert [(r.request.id, r.latency_ns) for r in records] == [(3, 10), (2, 10)]

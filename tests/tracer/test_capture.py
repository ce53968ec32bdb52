"""Byte-exact capture of real loopback traffic, on the running kernel.

A peer process moves known bytes through every syscall family the tracer
hooks; the test reassembles what the tracer delivered per socket and
direction and demands exactly the peer's ledger, with the right identity.
Each test runs with the variant this kernel picks and with every old-kernel
path forced, so the 4.14-era code runs here too.
"""

from __future__ import annotations

import os

import pytest

from libtrace import Direction, EventFlag, EventType, Syscall, Tracer

from ..tracing import drain, streams

pytestmark = [pytest.mark.root, pytest.mark.bpf]

VARIANTS = {
    "native": frozenset(),
    "perfbuf": frozenset({"perfbuf"}),
    "probe-read": frozenset({"probe-read"}),
    "no-btf": frozenset({"no-btf"}),
    "oldest": frozenset({"perfbuf", "probe-read", "no-btf"}),
}


@pytest.fixture(params=list(VARIANTS), ids=list(VARIANTS))
def compat(request: pytest.FixtureRequest) -> frozenset[str]:
    return VARIANTS[request.param]


def test_every_syscall_family_is_captured_byte_exact(peer_factory, compat):
    port = 41000 + 10 * list(VARIANTS.values()).index(compat)
    peer = peer_factory("all", port)
    with Tracer(pids=(peer.pid,), force_compat=compat) as tracer:
        ledger = peer.run()
        events = drain(tracer)
        assert tracer.stats().lost == 0
    data = [e for e in events if e.type is EventType.DATA]
    assert data, "no data events at all"
    assert {e.pid for e in events} == {peer.pid}
    assert {e.comm for e in events} == {"lt-peer"}

    captured = streams(events)
    expected = {}
    for fd, hexdata in ledger["sent"].items():
        expected[(peer.pid, int(fd), Direction.EGRESS)] = bytes.fromhex(hexdata)
    for fd, hexdata in ledger["received"].items():
        expected[(peer.pid, int(fd), Direction.INGRESS)] = bytes.fromhex(hexdata)
    assert set(captured) == set(expected)
    for key, want in expected.items():
        assert captured[key] == want, f"stream {key} differs"

    # Every syscall family left events.
    syscalls = {e.syscall for e in data}
    assert syscalls >= {
        Syscall.READ,
        Syscall.WRITE,
        Syscall.READV,
        Syscall.WRITEV,
        Syscall.SENDTO,
        Syscall.RECVFROM,
        Syscall.SENDMSG,
        Syscall.RECVMSG,
        Syscall.SENDMMSG,
        Syscall.RECVMMSG,
    }

    # Identity: each socket's events carry its tuple, seen from its own end.
    by_fd = {s["fd"]: s for s in peer.layout["sockets"] + ledger["late"]}
    for event in data:
        sock = by_fd[event.fd]
        assert event.l4 == sock["l4"]
        assert (event.laddr, event.lport) == (sock["laddr"], sock["lport"]), event
        if sock["rport"]:  # connected: the kernel's peer
            assert (event.raddr, event.rport) == (sock["raddr"], sock["rport"]), event
        assert event.family == ("ipv6" if ":" in sock["laddr"] else "ipv4")
    # Unconnected UDP: the peer comes from the call's sockaddr, both ends.
    udp_a, udp_b = (s for s in peer.layout["sockets"] if s["l4"] == "udp")
    for event in data:
        if event.fd == udp_b["fd"]:
            assert (event.raddr, event.rport) == (udp_a["laddr"], udp_a["lport"])
            assert EventFlag.ADDR_FROM_CALL in event.flags
        if event.fd == udp_a["fd"]:
            assert (event.raddr, event.rport) == (udp_b["laddr"], udp_b["lport"])

    # Threads: the IPv6 exchange ran in its own thread, the rest in the main one.
    v6_fds = {peer.layout["sockets"][2]["fd"], peer.layout["sockets"][3]["fd"]}
    assert {e.tid for e in data if e.fd in v6_fds} == {ledger["thread_tid"]}
    assert {e.tid for e in data if e.fd not in v6_fds} == {peer.pid}

    # Order: timestamps rise with the offsets within each stream.
    for key in expected:
        stream = sorted(
            (e for e in data if (e.pid, e.fd, e.direction) == key), key=lambda e: e.offset
        )
        assert stream[0].offset == 0
        assert [e.ts_ns for e in stream] == sorted(e.ts_ns for e in stream)

    # Files and pipes produce nothing.
    assert not {e.fd for e in events} & set(peer.layout["files"])
    assert not any(b"NOT-A-SOCKET" in e.data for e in data)

    # Connection events: connect on the clients, accept on the servers.
    late_client, late_server = ledger["late"]
    connects = [e for e in events if e.type is EventType.CONNECT]
    accepts = [e for e in events if e.type is EventType.ACCEPT]
    assert [(e.fd, e.rport) for e in connects] == [(late_client["fd"], late_server["lport"])]
    assert [(e.fd, e.lport) for e in accepts] == [(late_server["fd"], late_server["lport"])]

    # The variant's own flags say which path produced the events.
    flags = EventFlag(0)
    for event in data:
        flags |= event.flags
    assert (EventFlag.PERFBUF in flags) == ("perfbuf" in compat)
    assert (EventFlag.PROBE_READ in flags) == ("probe-read" in compat)
    assert (EventFlag.NO_BTF in flags) == ("no-btf" in compat)
    if "no-btf" in compat:
        assert all(EventFlag.PROC_LOOKUP in e.flags for e in data)


@pytest.mark.parametrize("cap", [1, 4096, 16384])
def test_payload_larger_than_the_cap_is_cut_at_the_cap(peer_factory, cap):
    sizes = [cap - 1 if cap > 1 else 1, cap, cap + 1, 3 * cap + 5, 60000]
    peer = peer_factory("big", 42000 + cap % 1000, *map(str, sizes))
    with Tracer(pids=(peer.pid,), payload_cap=cap) as tracer:
        ledger = peer.run()
        events = drain(tracer)
    client = peer.layout["sockets"][0]["fd"]
    sent = bytes.fromhex(ledger["sent"][str(client)])
    writes = [
        e
        for e in events
        if e.type is EventType.DATA and e.fd == client and e.direction is Direction.EGRESS
    ]
    assert sum(e.size for e in writes) == len(sent)
    for event in writes:
        assert event.captured == min(event.size, cap)
        assert event.data == sent[event.offset : event.offset + event.captured]
    assert any(e.size > cap and e.captured == cap for e in writes)


@pytest.mark.parametrize("variant", ["native", "perfbuf"])
def test_overload_with_a_tiny_buffer_counts_lost_events(peer_factory, variant):
    peer = peer_factory("flood", 43000 + (variant == "perfbuf"), "200000")
    with Tracer(
        pids=(peer.pid,), buffer_bytes=os.sysconf("SC_PAGE_SIZE"), force_compat=VARIANTS[variant]
    ) as tracer:
        peer.run()  # the writer runs while nobody drains
        events = drain(tracer)
        stats = tracer.stats()
    assert stats.lost > 0
    assert stats.events == len(events) > 0
    assert stats.kernel_events + stats.lost >= 200000

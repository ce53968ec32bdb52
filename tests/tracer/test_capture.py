"""Byte-exact capture of real loopback traffic, on the running kernel.

A peer process moves known bytes through every syscall family the tracer
hooks; the tests reassemble what the tracer delivered per socket and
direction and demand exactly the peer's ledger, with the right identity.
One capture runs per variant: the one this kernel picks ("native") and each
old-kernel path forced, so the 4.14-era code runs here too.

These are kernel-level tests: the kernel matrix runs them inside every guest
and files each under its ``capability`` (a column of the matrix); the forced
variants are filed under their own ``variant_capability`` column.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest

from libtrace import Direction, EventFlag, EventType, SocketEvent, Syscall, Tracer
from libtrace.bpf.build import Variant
from libtrace.tracer.events import MAX_PAYLOAD_PERFBUF
from libtrace.tracer.probe import ARGS_AT_EXIT_PREFIX, ARGS_FROM_STACK_PREFIX, probe_features

from ..tracing import Peer, drain, streams

pytestmark = [pytest.mark.root, pytest.mark.bpf]

VARIANTS = {
    "native": frozenset(),
    "perfbuf": frozenset({"perfbuf"}),
    "probe-read": frozenset({"probe-read"}),
    "no-btf": frozenset({"no-btf"}),
    "oldest": frozenset({"perfbuf", "probe-read", "no-btf"}),
    # The enter/exit pairs where the kernel would read the arguments at the exit.
    "enter-args": frozenset({"enter-args"}),
    # The registers read at the top of the kernel stack, as kernels before 5.15 do.
    "stack-regs": frozenset({"stack-regs"}),
    # Each event its own ring record where the exits would gather them per CPU.
    "no-batch": frozenset({"no-batch"}),
}
VARIANT_PARAMS = [
    pytest.param(
        name,
        id=name,
        marks=[]
        if name in ("native", "enter-args", "stack-regs", "no-batch")
        else [pytest.mark.variant_capability(f"compat_{name.replace('-', '_')}")],
    )
    for name in VARIANTS
]


@dataclass
class Capture:
    compat: frozenset[str]
    variant: Variant
    layout: dict[str, Any]
    ledger: dict[str, Any]
    events: list[SocketEvent]
    lost: int
    args_at_exit: str | None
    batching: bool
    #: program runs the kernel skipped (Tracer.stats().missed)
    missed: int

    def differs(self, key: tuple[int, int, Direction]) -> str:
        """Why a stream's bytes may differ: a program run the kernel skipped
        takes its bytes with it and moves no offset, so no gap shows."""
        skipped = f" (the kernel skipped {self.missed} program runs)" if self.missed else ""
        return f"stream {key} differs{skipped}"

    @property
    def data(self) -> list[SocketEvent]:
        return [e for e in self.events if e.type is EventType.DATA]

    def sockets(self, l4: str) -> list[dict[str, Any]]:
        return [s for s in self.layout["sockets"] + self.ledger["late"] if s["l4"] == l4]

    def expected(self, fds: set[int]) -> dict[tuple[int, int, Direction], bytes]:
        pid = self.layout["pid"]
        out = {}
        for direction, side in ((Direction.EGRESS, "sent"), (Direction.INGRESS, "received")):
            for fd, hexdata in self.ledger[side].items():
                if int(fd) in fds:
                    out[(pid, int(fd), direction)] = bytes.fromhex(hexdata)
        return out


@pytest.fixture(scope="module", params=VARIANT_PARAMS)
def capture(request: pytest.FixtureRequest) -> Any:
    compat = VARIANTS[request.param]
    peer = Peer("all", 0)
    try:
        with Tracer(pids=(peer.pid,), force_compat=compat) as tracer:
            ledger = peer.run()
            events = drain(tracer)
            stats = tracer.stats()
            assert tracer.variant is not None
        # Closed before the tests run: before 4.15 a tracepoint takes one BPF
        # program, and other tests start tracers of their own.
        yield Capture(
            compat, tracer.variant, peer.layout, ledger, events, stats.lost,
            tracer.args_at_exit, tracer.batching, stats.missed,
        )
    finally:
        peer.finish()


@pytest.mark.capability("attach")
def test_programs_attach_and_deliver(capture, record_property):
    if not capture.compat:
        # The matrix sets this beside its static prediction for the kernel.
        record_property("variant", capture.variant.name)
    assert capture.data, "no data events at all"
    assert capture.lost == 0
    features = probe_features()
    assert capture.variant.ringbuf == ("perfbuf" not in capture.compat and features.ringbuf)
    # One exit program per data syscall with BTF: through bpf_task_pt_regs where
    # the kernel (5.15+) and the object have it, else from the kernel stack.
    if "enter-args" in capture.compat or not capture.variant.btf:
        assert capture.args_at_exit is None
    elif features.task_pt_regs and not capture.compat & {"probe-read", "stack-regs"}:
        assert capture.args_at_exit == ARGS_AT_EXIT_PREFIX
    else:
        assert capture.args_at_exit == ARGS_FROM_STACK_PREFIX
    # Gathered per CPU by the bpf_task_pt_regs exits, into the ring buffer only.
    assert capture.batching == (
        capture.args_at_exit == ARGS_AT_EXIT_PREFIX and capture.variant.ringbuf
        and "no-batch" not in capture.compat
    )


@pytest.mark.capability("buffer")
def test_event_buffer_delivers_every_event_in_order(capture):
    pid = capture.layout["pid"]
    assert {e.pid for e in capture.events} == {pid}
    assert {e.comm for e in capture.events} == {"lt-peer"}
    # Order: timestamps rise with the offsets within each stream.
    keys = {(e.pid, e.fd, e.direction) for e in capture.data}
    for key in keys:
        stream = sorted(
            (e for e in capture.data if (e.pid, e.fd, e.direction) == key), key=lambda e: e.offset
        )
        assert stream[0].offset == 0
        assert [e.ts_ns for e in stream] == sorted(e.ts_ns for e in stream)
    flags = EventFlag(0)
    for event in capture.data:
        flags |= event.flags
    assert (EventFlag.PERFBUF in flags) == (not capture.variant.ringbuf)
    assert (EventFlag.PROBE_READ in flags) == (not capture.variant.probe_read_user)


@pytest.mark.capability("tcp_capture")
def test_tcp_streams_are_byte_exact_through_every_syscall_family(capture):
    tcp = {s["fd"] for s in capture.sockets("tcp")}
    captured = {k: v for k, v in streams(capture.data).items() if k[1] in tcp}
    expected = capture.expected(tcp)
    assert set(captured) == set(expected)
    for key, want in expected.items():
        assert captured[key] == want, capture.differs(key)
    syscalls = {e.syscall for e in capture.data if e.fd in tcp}
    assert syscalls >= {
        Syscall.READ,
        Syscall.WRITE,
        Syscall.READV,
        Syscall.WRITEV,
        Syscall.SENDTO,
        Syscall.RECVFROM,
        Syscall.SENDMSG,
        Syscall.RECVMSG,
    }
    # Several iovecs make several chunks, contiguous in the stream.
    assert sum(e.syscall is Syscall.SENDMSG for e in capture.data) >= 3


@pytest.mark.capability("udp_capture")
def test_udp_datagrams_are_byte_exact_with_per_call_peers(capture):
    udp_a, udp_b = capture.sockets("udp")
    captured = {
        k: v for k, v in streams(capture.data).items() if k[1] in (udp_a["fd"], udp_b["fd"])
    }
    expected = capture.expected({udp_a["fd"], udp_b["fd"]})
    assert set(captured) == set(expected)
    for key, want in expected.items():
        assert captured[key] == want, capture.differs(key)
    syscalls = {e.syscall for e in capture.data if e.l4 == "udp"}
    assert syscalls == {Syscall.SENDTO, Syscall.RECVFROM, Syscall.SENDMMSG, Syscall.RECVMMSG}
    # Unconnected: the peer comes from the call's sockaddr, at both ends.
    for event in capture.data:
        if event.fd == udp_b["fd"]:
            assert (event.raddr, event.rport) == (udp_a["laddr"], udp_a["lport"])
            assert EventFlag.ADDR_FROM_CALL in event.flags
        if event.fd == udp_a["fd"]:
            assert (event.raddr, event.rport) == (udp_b["laddr"], udp_b["lport"])


@pytest.mark.capability("core_identity")
def test_socket_identity_from_both_ends(capture):
    if capture.variant.btf is False and not capture.compat:
        pytest.skip("the kernel has no BTF: identity comes from the no-BTF path")
    by_fd = {s["fd"]: s for s in capture.layout["sockets"] + capture.ledger["late"]}
    for event in capture.data:
        sock = by_fd[event.fd]
        assert event.l4 == sock["l4"]
        assert event.family == ("ipv6" if ":" in sock["laddr"] else "ipv4")
        assert (event.laddr, event.lport) == (sock["laddr"], sock["lport"]), event
        if sock["rport"]:  # connected: the kernel's peer
            assert (event.raddr, event.rport) == (sock["raddr"], sock["rport"]), event
    assert (EventFlag.NO_BTF in capture.data[0].flags) == (not capture.variant.btf)
    if not capture.variant.btf:
        assert all(EventFlag.PROC_LOOKUP in e.flags for e in capture.data)


@pytest.mark.capability("tcp_capture")
def test_threads_pids_and_connection_events(capture):
    pid = capture.layout["pid"]
    # The IPv6 exchange ran in its own thread, the rest in the main one.
    v6_fds = {capture.layout["sockets"][2]["fd"], capture.layout["sockets"][3]["fd"]}
    assert {e.tid for e in capture.data if e.fd in v6_fds} == {capture.ledger["thread_tid"]}
    assert {e.tid for e in capture.data if e.fd not in v6_fds} == {pid}
    late_client, late_server = capture.ledger["late"]
    connects = [e for e in capture.events if e.type is EventType.CONNECT]
    accepts = [e for e in capture.events if e.type is EventType.ACCEPT]
    assert [(e.fd, e.rport) for e in connects] == [(late_client["fd"], late_server["lport"])]
    assert [(e.fd, e.lport) for e in accepts] == [(late_server["fd"], late_server["lport"])]


@pytest.mark.capability("tcp_capture")
def test_files_and_pipes_produce_nothing(capture):
    assert not {e.fd for e in capture.events} & set(capture.layout["files"])
    assert not any(b"NOT-A-SOCKET" in e.data for e in capture.data)


@pytest.mark.capability("payload_cap")
@pytest.mark.parametrize(
    ("cap", "variant", "effective"),
    [
        (1, "native", 1),
        (4096, "native", 4096),
        (16384, "native", 16384),
        (65536, "native", 65536),
        # A perf record's size is 16 bits: a larger cap is lowered to 65024.
        (65536, "perfbuf", 65024),
    ],
    ids=["1", "4096", "16384", "65536", "65536-perfbuf"],
)
def test_payload_larger_than_the_cap_is_cut_at_the_cap(peer_factory, cap, variant, effective):
    sizes = [max(cap - 1, 1), cap, cap + 1, 3 * cap + 5, 60000]
    peer = peer_factory("big", 0, *map(str, sizes))
    with Tracer(pids=(peer.pid,), payload_cap=cap, force_compat=VARIANTS[variant]) as tracer:
        assert tracer.variant is not None
        if not tracer.variant.ringbuf:  # "native" is the perf buffer before 5.8
            effective = min(effective, MAX_PAYLOAD_PERFBUF)
        assert tracer.payload_cap == effective
        ledger = peer.run()
        events = drain(tracer)
    cap = effective
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


@pytest.mark.capability("lost_accounting")
@pytest.mark.parametrize("variant", ["native", "perfbuf"])
def test_overload_with_a_tiny_buffer_counts_lost_events(peer_factory, variant):
    writes = 200_000
    peer = peer_factory("flood", 0, str(writes))
    with Tracer(
        pids=(peer.pid,), buffer_bytes=os.sysconf("SC_PAGE_SIZE"), force_compat=VARIANTS[variant]
    ) as tracer:
        peer.run()  # the writer runs while nobody drains
        events = drain(tracer)
        # Stopped and drained, the stats are exact on every kernel (4.14 and 4.19
        # report no full ring to the programs: their loss is known only then).
        events += tracer.drain()
        stats = tracer.stats()
    assert stats.lost > 0
    assert stats.events == len(events) > 0
    assert stats.kernel_events + stats.lost >= writes

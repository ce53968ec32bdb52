"""The no-BTF variant's completion of events from /proc, on real sockets of this process."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from libtrace.tracer.events import EventFlag, EventType, RawEvent, SocketEvent, decode_python
from libtrace.tracer.no_btf import NoBtfIdentity


def _event(fd: int, type_: EventType = EventType.DATA, *, family: int = 0,
           flags: EventFlag = EventFlag.NO_BTF, peer: bytes = bytes(4), rport: int = 0,
           ) -> SocketEvent:  # fmt: skip
    """What the no-BTF programs send: the pid and fd, no addresses (family 0),
    or a call's own peer (``peer``, ``rport``)."""
    raw = RawEvent(type=type_, pid=os.getpid(), tid=os.getpid(), fd=fd, family=family,
                   flags=int(flags), size=1, captured=1, rport=rport)  # fmt: skip
    raw.raddr[:4] = peer
    return decode_python(bytes(raw) + b"x")


@pytest.fixture
def connection() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        with client, accepted:
            yield client, accepted


def test_each_event_gets_its_sockets_identity_and_the_lookup_flag(
    connection: tuple[socket.socket, socket.socket],
) -> None:
    client, accepted = connection
    identity = NoBtfIdentity()
    first, second = _event(client.fileno()), _event(accepted.fileno())
    out = identity.complete_all([first, second, _event(client.fileno())])
    assert out[:2] == [first, second] and len(out) == 3  # in place, in order
    for event, sock in zip(out, (client, accepted, client), strict=True):
        assert (event.l4, event.family) == ("tcp", "ipv4")
        assert (event.laddr, event.lport) == sock.getsockname()
        assert (event.raddr, event.rport) == sock.getpeername()
        assert event.flags == EventFlag.NO_BTF | EventFlag.PROC_LOOKUP


def test_a_calls_own_peer_is_kept_and_a_gone_socket_dropped_unless_inet(
    connection: tuple[socket.socket, socket.socket],
) -> None:
    client, _ = connection
    identity = NoBtfIdentity()
    own = _event(client.fileno(), family=2, flags=EventFlag.NO_BTF | EventFlag.ADDR_FROM_CALL,
                 peer=bytes([10, 9, 8, 7]), rport=5353)  # fmt: skip
    [kept] = identity.complete_all([own])
    assert (kept.laddr, kept.lport) == client.getsockname()
    assert (kept.raddr, kept.rport) == ("10.9.8.7", 5353)  # the call's, not /proc's
    assert kept.flags & EventFlag.PROC_LOOKUP and kept.flags & EventFlag.ADDR_FROM_CALL
    gone = os.open(os.devnull, os.O_RDONLY)
    os.close(gone)  # a number no socket holds
    inet = _event(gone, family=2)
    assert identity.complete_all([_event(gone), inet]) == [inet]


def test_a_close_forgets_the_socket_so_its_number_can_be_another(
    connection: tuple[socket.socket, socket.socket],
) -> None:
    client, accepted = connection
    identity = NoBtfIdentity()
    fd = client.fileno()
    identity.complete_all([_event(fd), _event(fd, EventType.CLOSE)])
    assert identity.cache == {}
    os.dup2(accepted.fileno(), fd)  # the number now names the other end
    [event] = identity.complete_all([_event(fd)])
    assert (event.laddr, event.lport) == accepted.getsockname()

"""Conversation on UDP: datagrams that no protocol claims are given up on (sans-IO)."""

from __future__ import annotations

from libtrace.flows import Chunk, Conversation
from libtrace.flows.conversation import MAX_INFERENCE_CHUNKS

CLIENT, SERVER = ("10.0.0.1", 40000), ("10.0.0.2", 9)


def test_unrecognised_datagrams_are_given_up_after_the_inference_budget() -> None:
    conversation = Conversation("udp", CLIENT, SERVER)

    for n in range(MAX_INFERENCE_CHUNKS):
        assert not conversation.given_up
        assert conversation.datagram(CLIENT, b"\xff\xfe not a protocol %d" % n, n) == []

    assert conversation.given_up and conversation.parser is None
    assert conversation.datagram(CLIENT, b"anything", 99) == []


def test_an_empty_datagram_is_nothing_to_infer() -> None:
    conversation = Conversation("udp", CLIENT, SERVER)

    assert conversation.datagram(CLIENT, b"", 1) == []
    assert not conversation.given_up and conversation.parser is None


def test_data_is_chunks_of_one_chunk_before_and_after_the_protocol_is_known() -> None:
    """The live pipeline's hot path gives what chunks() gives: while the protocol
    is undecided (kept, then replayed), once it is known, and once given up."""
    server = ("10.0.0.2", 6379)
    exchange = [(CLIENT, b"*1\r\n$4\r\nPI"), (CLIENT, b"NG\r\n"), (server, b"+PONG\r\n"),
                (CLIENT, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), (server, b"$1\r\nv\r\n")]  # fmt: skip
    fast, slow = Conversation("tcp", CLIENT, server), Conversation("tcp", CLIENT, server)
    got: list[list[dict[str, object]]] = [[], []]
    for ts, (sender, payload) in enumerate(exchange, 1):
        got[0] += [r.to_dict(None, None) for r in fast.data(sender, payload, ts)]
        chunk = [Chunk(ts, payload)]
        got[1] += [r.to_dict(None, None) for r in slow.chunks(sender, chunk, False, ts)]
    assert got[0] == got[1] and len(got[0]) == 2, got
    assert fast.protocol == slow.protocol == "redis"

    given_up = Conversation("tcp", CLIENT, SERVER)
    given_up.given_up = True
    assert given_up.data(CLIENT, b"GET / HTTP/1.1\r\n\r\n", 1) == [] and given_up.parser is None

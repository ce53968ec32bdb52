"""Conversation on UDP: datagrams that no protocol claims are given up on (sans-IO)."""

from __future__ import annotations

from libtrace.flows import Conversation
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

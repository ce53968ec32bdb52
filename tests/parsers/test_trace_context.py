"""Trace context headers become a first-class part of HTTP records: the records
of two services that pass a traceparent along can be joined on it."""

from __future__ import annotations

import json

from libtrace.parsers.redaction import Redaction

from .test_redaction import h2_exchange, rendered

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def records(conversation: list[tuple[str, bytes]], port: int) -> list[dict[str, object]]:
    text = rendered(conversation, Redaction(), port)
    return [json.loads(line[: line.rindex("}") + 1]) for line in text.splitlines()]


def test_http1_requests_carry_their_trace_context() -> None:
    conversation = [
        ("client", f"GET /a HTTP/1.1\r\nHost: x\r\nTraceparent: {TRACEPARENT}\r\n"
                   "tracestate: congo=t61rcWkgMzE\r\nX-Request-ID: r-42\r\n\r\n".encode()),
        ("server", b"HTTP/1.1 204 No Content\r\n\r\n"),
        ("client", b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("server", b"HTTP/1.1 204 No Content\r\n\r\n"),
    ]  # fmt: skip

    first, second = records(conversation, 80)

    assert first["request"]["trace_context"] == {  # type: ignore[index]
        "traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE", "x-request-id": "r-42"}
    assert "trace_context" not in second["request"]  # type: ignore[operator]


def test_http2_requests_carry_b3() -> None:
    conversation = h2_exchange([(":path", "/c"), ("b3", "80f198ee56343ba8-e457b5a2e4d86bd1-1")])

    (record,) = records(conversation, 8080)

    assert record["request"]["trace_context"] == {  # type: ignore[index]
        "b3": "80f198ee56343ba8-e457b5a2e4d86bd1-1"}

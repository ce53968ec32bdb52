"""Redis: redis-server, driven by redis-cli (RESP2 and RESP3) and raw pipelined RESP."""

from __future__ import annotations

import re
import socket
import time

from ._clients import raw_exchange, run_client
from ._description import Service
from ._probes import exchange
from ._running import Running

#: Commands of the raw pipelined batch: enough to fill several TCP segments' worth.
PIPELINE_DEPTH = 50


def _command(running: Running) -> list[str]:
    return [
        "redis-server", "--port", str(running.port), "--bind", running.host,
        "--save", "", "--appendonly", "no", "--dir", str(running.workdir),
    ]  # fmt: skip


def _ready(running: Running) -> bool:
    return exchange(running, b"PING\r\n", lambda reply: reply.endswith(b"\r\n"))


def _resp(*args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    parts += [f"${len(arg.encode())}\r\n{arg}\r\n".encode() for arg in args]
    return b"".join(parts)


def _traffic(running: Running) -> None:
    """RESP2 commands, a RESP3 map (HELLO 3), inline and pipelined commands, errors."""
    cli = ["redis-cli", "-h", running.host, "-p", str(running.port)]
    run_client(*cli, "SET", "greeting", "hello")
    run_client(*cli, "GET", "greeting")
    run_client(*cli, "GET", "missing")
    run_client(*cli, "INCR", "greeting")  # error: not an integer
    run_client(*cli, "HSET", "h", "a", "1", "b", "2")
    run_client(*cli, "-3", "HGETALL", "h")  # RESP3: HELLO 3, then a map reply
    run_client(*cli, "LRANGE", "nolist", "0", "-1")
    raw_exchange(
        running.host,
        running.port,
        b"PING\r\n" + _resp("SET", "k", "v") + _resp("GET", "k") + _resp("NOSUCH1"),
    )
    batch = b"".join(_resp("RPUSH", "queue", f"item-{i}") for i in range(PIPELINE_DEPTH))
    raw_exchange(running.host, running.port, batch + _resp("LRANGE", "queue", "0", "-1"))
    raw_exchange(
        running.host,
        running.port,
        _resp("HELLO", "3") + _resp("HGETALL", "h") + _resp("INCRBYFLOAT", "f", "1.5")
        + _resp("GET", "nosuchkey") + _resp("SET", "a"),
    )  # fmt: skip


#: Seconds a variant's connection waits for the bytes it expects.
VARIANT_READ_TIMEOUT_S = 5.0


def _read_until(sock: socket.socket, marker: bytes, count: int = 1) -> bytes:
    """Read until ``marker`` was seen ``count`` times (or the timeout passed)."""
    data = b""
    deadline = time.monotonic() + VARIANT_READ_TIMEOUT_S
    sock.settimeout(VARIANT_READ_TIMEOUT_S)
    while data.count(marker) < count and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _variants(running: Running) -> None:
    """CLIENT REPLY OFF/SKIP/ON, inline commands in redis-cli's quoting, pub/sub in RESP2
    and in RESP3 (pushes), MONITOR."""
    host, port = running.host, running.port
    cli = ["redis-cli", "-h", host, "-p", str(port)]
    raw_exchange(host, port, b"".join([
        _resp("CLIENT", "REPLY", "OFF"), _resp("SET", "quiet", "1"),
        _resp("CLIENT", "REPLY", "ON"), _resp("GET", "quiet"),
        _resp("CLIENT", "REPLY", "SKIP"), _resp("INCR", "quiet"), _resp("GET", "quiet"),
    ]))  # fmt: skip
    # one inline command per connection: tshark reads none, and counts one per segment
    for line in (b'SET "two words" \'it\\\'s\'\r\n', b'GET "two words"\r\n',
                 b'ECHO "tab\\there\\x41"\r\n'):  # fmt: skip
        raw_exchange(host, port, line)
    for hello in (b"", _resp("HELLO", "3")):  # RESP2, then RESP3 (pushes)
        with socket.create_connection((host, port), 5) as subscriber:
            if hello:
                subscriber.sendall(hello)
                _read_until(subscriber, b"modules")
            subscriber.sendall(_resp("SUBSCRIBE", "news"))
            _read_until(subscriber, b"news")
            run_client(*cli, "PUBLISH", "news", "first")
            _read_until(subscriber, b"first")
            run_client(*cli, "PUBLISH", "news", "second")
            _read_until(subscriber, b"second")
            subscriber.sendall(_resp("UNSUBSCRIBE", "news"))
            _read_until(subscriber, b"unsubscribe")
    with socket.create_connection((host, port), 5) as monitor:
        monitor.sendall(_resp("MONITOR"))
        _read_until(monitor, b"+OK")
        run_client(*cli, "SET", "watched", "1")
        run_client(*cli, "GET", "watched")
        _read_until(monitor, b'"watched"', 2)


def command_stats(running: Running) -> dict[str, int]:
    """``INFO commandstats`` as command → calls (``set``, ``get``, …)."""
    text = run_client(
        "redis-cli", "-h", running.host, "-p", str(running.port), "INFO", "commandstats"
    ).decode()
    return {
        match.group(1): int(match.group(2))
        for match in re.finditer(r"^cmdstat_([\w|]+):calls=(\d+)", text, re.MULTILINE)
    }


REDIS = Service(
    name="redis",
    fixture="redis.pcap",
    protocol="redis",
    package="redis-server",
    program="redis-server",
    port=16379,
    command=_command,
    ready=_ready,
    traffic=_traffic,
    variants=_variants,
    stats=command_stats,
    clients=("redis-cli",),
)

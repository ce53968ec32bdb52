"""A FAKE Dubbo provider: ``python -m libtrace.services._fake_dubbo_server HOST PORT``.

Not a real Dubbo server (none is packaged for Debian): it answers each Dubbo 2
frame with a valid response frame, decoding the request prefix with libtrace's
own hessian2 reader.  It answers OK with a string, SERVICE_NOT_FOUND (60) for
``missing.Service``, an exception result for method ``fail``, and heartbeats
with heartbeat events; one-way requests get no answer.  Each request is logged
to stderr (``request <id> <service>.<method>``), so the service can count them.
It runs as its own process, so the tracer sees a server pid like any other.
"""

from __future__ import annotations

import socket
import sys
import threading

from ..parsers import Cursor
from ..parsers.hessian2 import encode_int, encode_string, read_string

MAGIC = b"\xda\xbb"
HEADER_LEN = 16
FLAG_REQUEST, FLAG_TWO_WAY, FLAG_EVENT, HESSIAN2 = 0x80, 0x40, 0x20, 2
STATUS_OK, STATUS_SERVICE_NOT_FOUND = 20, 60


def frame(flags: int, status: int, request_id: int, body: bytes) -> bytes:
    """One Dubbo 2 frame: magic, flags, status, request id, body length, body."""
    return (
        MAGIC + bytes([flags, status]) + request_id.to_bytes(8, "big")
        + len(body).to_bytes(4, "big") + body
    )  # fmt: skip


def request(
    request_id: int, service: str, method: str, *, two_way: bool = True, version: str = "1.0.0"
) -> bytes:
    """A hessian2 request frame: the prefix fields plus one string argument."""
    body = (
        b"".join(
            encode_string(s)
            for s in ("2.0.2", service, version, method, "Ljava/lang/String;", "world")
        )
        + b"H\x5a"
    )  # an empty attachments map
    flags = FLAG_REQUEST | (FLAG_TWO_WAY if two_way else 0) | HESSIAN2
    return frame(flags, 0, request_id, body)


def heartbeat(request_id: int) -> bytes:
    """A two-way heartbeat event with a null body."""
    return frame(FLAG_REQUEST | FLAG_TWO_WAY | FLAG_EVENT | HESSIAN2, 0, request_id, b"N")


def _answer(flags: int, request_id: int, body: bytes) -> bytes | None:
    if flags & FLAG_EVENT:
        return frame(FLAG_EVENT | HESSIAN2, STATUS_OK, request_id, b"N")
    cur = Cursor(body)
    _, service, _, method = (read_string(cur) for _ in range(4))
    print(f"request {request_id} {service}.{method}", file=sys.stderr, flush=True)
    if not flags & FLAG_TWO_WAY:
        return None
    if service == "missing.Service":
        return frame(
            HESSIAN2, STATUS_SERVICE_NOT_FOUND, request_id, encode_string("service not found")
        )
    if method == "fail":
        return frame(HESSIAN2, STATUS_OK, request_id, encode_int(0) + encode_string("boom"))
    return frame(HESSIAN2, STATUS_OK, request_id, encode_int(1) + encode_string("hi"))


def _serve(conn: socket.socket) -> None:
    with conn:
        buf = b""
        while data := conn.recv(65536):
            buf += data
            while len(buf) >= HEADER_LEN:
                size = int.from_bytes(buf[12:16], "big")
                if len(buf) < HEADER_LEN + size:
                    break
                flags, request_id = buf[2], int.from_bytes(buf[4:12], "big")
                body, buf = buf[HEADER_LEN : HEADER_LEN + size], buf[HEADER_LEN + size :]
                reply = _answer(flags, request_id, body)
                if reply:
                    conn.sendall(reply)


def main(argv: list[str]) -> None:
    host, port = argv[0], int(argv[1])
    with socket.create_server((host, port)) as listener:
        print(f"FAKE Dubbo server listening on {host}:{port}", file=sys.stderr, flush=True)
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=_serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main(sys.argv[1:])

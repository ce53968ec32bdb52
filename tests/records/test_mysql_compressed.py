"""A real MariaDB client speaking the compressed protocol (``mariadb --compress``), traced.

The statements travel deflated on the wire (the traced bytes do not hold their
text), yet the records of both ends give them, paired with their result sets.
"""

from __future__ import annotations

import shutil
import socket

import pytest

from libtrace import Tracer
from libtrace.records import RecordPipeline
from libtrace.services import start
from libtrace.services._clients import run_client
from libtrace.services._mysql import PASSWORD, USER

from ..tracing import drain
from ._events import records_json

pytestmark = [
    pytest.mark.root,
    pytest.mark.bpf,
    pytest.mark.skipif(
        not (shutil.which("mariadbd") and shutil.which("mariadb")),
        reason="needs mariadbd and mariadb (scripts/install-deps.sh)",
    ),
]

#: Long enough to be deflated (clients send payloads under 50 bytes as they are).
LONG = "SELECT '" + "compressed " * 20 + "' AS long_text"
SHORT = "SELECT 6 * 7 AS answer"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_real_client_with_compress_gives_its_statements() -> None:
    port = _free_port()
    with (start("mysql", "process", host="127.0.0.1", port=port),
          Tracer(ports=(port,), go_tls=False) as tracer):  # fmt: skip
        run_client("mariadb", "--no-defaults", "--compress", "-h", "127.0.0.1",
                   "-P", str(port), "-u", USER, f"-p{PASSWORD}", "-e",
                   f"{SHORT}; {LONG}")  # fmt: skip
        events = drain(tracer)
    wire = b"".join(e.data for e in events if e.data)
    assert LONG.encode() not in wire  # it went deflated
    pipeline = RecordPipeline()
    records = records_json(pipeline, events)
    for side in ("client", "server"):
        answered = [
            (r["request"]["query"], r["response"]["kind"], r["response"]["rows"])
            for r in records
            if r["side"] == side and r["protocol"] == "mysql" and r.get("response")
            and r.get("request") and r["request"]["query"] in (SHORT, LONG)
        ]  # fmt: skip
        assert answered == [(SHORT, "resultset", 1), (LONG, "resultset", 1)], side

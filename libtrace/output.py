"""The output edge: a record (the ``libtrace pcap --json`` dict, live records'
too) as a table row, with its request and response summarised by the fields
its protocol's spec names.  ``libtrace pcap``, ``libtrace trace --records``
and ``libtrace check`` print their rows from here.

Files that hold records or payloads (check reports and their captures,
expected records, rewritten captures, saved events, servers' logs) are
written through :func:`open_private`: readable by their owner only.
"""

from __future__ import annotations

import argparse
import os
import stat
import time
from pathlib import Path
from typing import Any, BinaryIO

from .parsers import SPECS, clip
from .parsers.redaction import Redaction

#: The columns of a record row.
RECORD_HEADER = (
    f"{'time':<15}  {'proto':<6} {'client':>21}    {'server':<21} {'status':<12} "
    f"{'latency':>10}  request => response"
)

#: How a bare number reads in a row.
LABELS = {"api_version": "v{}", "error_code": "error {}", "qos": "qos {}",
          "return_code": "rc {}", "statement_id": "stmt {}", "affected_rows": "affected {}",
          "rows": "{} rows", "grpc_status": "grpc {}", "reset_code": "reset {}"}  # fmt: skip
#: The most characters one value takes in a row.
MAX_VALUE_CHARS = 60


def _text(key: str, value: Any) -> str:
    if isinstance(value, list):
        text = ", ".join(_text(key, item) for item in value) if value and isinstance(
            value[0], dict) else " ".join(str(item) for item in value)  # fmt: skip
    elif isinstance(value, dict):  # a DNS answer
        text = " ".join(str(value[k]) for k in ("type", "data") if k in value)
    else:
        text = LABELS.get(key, "{}").format(value)
    return clip(text, MAX_VALUE_CHARS)


def _summary(message: dict[str, Any] | None, keys: tuple[str, ...]) -> str:
    if not message:
        return "-"
    parts = []
    for choice in keys:
        key = next((k for k in choice.split("|") if message.get(k) not in (None, "", [])), None)
        if key is not None:
            parts.append(_text(key, message[key]))
    return " ".join(parts)


def summarize(record: dict[str, Any]) -> tuple[str, str]:
    """A record's request and response as a row shows them (also ``libtrace check``'s table)."""
    spec = SPECS.get(record["protocol"])
    request_keys = spec.request_summary if spec is not None else ()
    response_keys = spec.response_summary if spec is not None else ()
    request = _summary(record["request"], request_keys)
    response = record["response"]
    if record["request"] is None and response and response.get("kind") == "greeting":
        request = "handshake"  # the server speaks first: no request is missing
    return request, _summary(response, response_keys)


def wall_clock(ts_ns: int) -> str:
    """The local time of day of an epoch timestamp, to the microsecond (a row's time)."""
    seconds, ns = divmod(ts_ns, 1_000_000_000)
    return f"{time.strftime('%H:%M:%S', time.localtime(seconds))}.{ns // 1000:06d}"


def monotonic_to_epoch_ns() -> int:
    """What to add to a ``CLOCK_MONOTONIC`` timestamp (live events' ``ts_ns``) for
    the epoch: live rows show the wall clock, as capture rows do."""
    return time.time_ns() - time.monotonic_ns()


def record_row(record: dict[str, Any], clock_offset_ns: int = 0) -> str:
    """A record as one table row under :data:`RECORD_HEADER`; its time is the
    wall clock of ``ts_ns`` + ``clock_offset_ns`` (see :func:`monotonic_to_epoch_ns`)."""
    latency = record["latency_ns"]
    latency_text = f"{latency / 1e6:.3f}ms" if latency is not None else "-"
    request, response = summarize(record)
    return (f"{wall_clock(record['ts_ns'] + clock_offset_ns):<15}  {record['protocol']:<6} "
            f"{record['client']:>21} -> {record['server']:<21} {record['status']:<12} "
            f"{latency_text:>10}  {request}  => {response}")


def add_record_options(parser: argparse.ArgumentParser) -> None:
    """The options of commands that print records: redaction and headers."""
    parser.add_argument(
        "--no-redact", action="store_true",
        help="keep secrets in records (default: credential headers, query parameters, Redis "
        "AUTH arguments and SQL credential literals read <redacted>)",
    )  # fmt: skip
    parser.add_argument(
        "--redact-header", action="append", default=[], metavar="NAME",
        help="also redact this header's values (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--redact-sql-literals", action="store_true",
        help="replace every SQL literal with ? (statement shapes without data)",
    )  # fmt: skip
    parser.add_argument(
        "--headers", action="store_true",
        help="list HTTP/1 and HTTP/2 headers in records (credential headers redacted)",
    )  # fmt: skip


def redaction_of(args: argparse.Namespace) -> Redaction:
    """The redaction policy :func:`add_record_options`' options ask for."""
    if args.no_redact:
        return Redaction.off()
    policy = Redaction(sql_literals=args.redact_sql_literals)
    return policy.with_headers(args.redact_header)


#: The mode of files that hold records or payloads: what traced processes sent
#: (credentials a redaction rule does not know, bodies) is for their owner only.
PRIVATE_MODE = 0o600


def open_private(path: str | os.PathLike[str], buffering: int = -1) -> BinaryIO:
    """Open ``path`` for writing, truncated, as a file only its owner may read.

    A new file is created with :data:`PRIVATE_MODE`, and an existing regular
    file is given it before anything is written (``O_CREAT``'s mode applies to
    new files only).  Other files (``/dev/null``, a pipe) keep their mode.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, PRIVATE_MODE)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, PRIVATE_MODE)
        return os.fdopen(fd, "wb", buffering)
    except BaseException:
        os.close(fd)
        raise


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` as :func:`open_private` opens it."""
    with open_private(path) as out:
        out.write(text.encode())
    return path

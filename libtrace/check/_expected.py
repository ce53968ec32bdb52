"""Committed expected records of each scenario: ``fixtures/check/<scenario>.expected.jsonl``.

The differential check proves trace == wire for one run; the expected file
pins what that run must contain at all, so that a traffic script or parser
change that loses records on *both* paths is still seen.  The file holds the
*expected projection* of the wire's records, one JSON object a line, sorted:
the protocol key of :mod:`._compare` made independent of the run:

- the server's ``host:port`` inside any string (the HTTP ``Host`` header,
  the HTTP/2 ``:authority``) becomes ``{server}``: a check picks a free port;
- the fields of :data:`VOLATILE_FIELDS` are dropped: values the client picks
  at random for each run (a DNS query id).  The trace-vs-wire comparison
  keeps them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..output import write_private
from ._compare import PROTOCOL_FIELDS, Difference

#: Protocol → (message, field) pairs that differ from run to run by design.
VOLATILE_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    # dig and glibc pick a random 16-bit query id per query.
    "dns": (("request", "id"), ("response", "id")),
}
#: Stands for the scenario's server endpoint in expected records.
SERVER_PLACEHOLDER = "{server}"
#: Where the expected files live, in a checkout (not shipped in the wheel).
FIXTURES_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "check"


def expected_path(scenario: str, directory: Path = FIXTURES_DIR) -> Path:
    return directory / f"{scenario}.expected.jsonl"


def _placeholders(value: Any, server: str) -> Any:
    if isinstance(value, str):
        return value.replace(server, SERVER_PLACEHOLDER)
    if isinstance(value, list):
        return [_placeholders(v, server) for v in value]
    if isinstance(value, dict):
        return {k: _placeholders(v, server) for k, v in value.items()}
    return value


def expected_key(record: Mapping[str, Any], server: str) -> str:
    """The record's protocol fields without run-specific values, as canonical JSON."""
    view = {k: _placeholders(record.get(k), server) for k in PROTOCOL_FIELDS}
    for message, name in VOLATILE_FIELDS.get(str(record.get("protocol")), ()):
        if isinstance(view.get(message), dict):
            view[message].pop(name, None)
    return json.dumps(view, sort_keys=True)


def expected_view(records: Iterable[Mapping[str, Any]], server: str) -> Counter[str]:
    return Counter(expected_key(r, server) for r in records)


def read_expected(path: Path) -> Counter[str] | None:
    """The multiset in an expected file (keys re-canonicalised), or None when it is absent."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return None
    return Counter(json.dumps(json.loads(line), sort_keys=True) for line in lines if line.strip())


def write_expected(path: Path, keys: Counter[str]) -> Path:
    """Write ``keys`` sorted, each as many times as counted (a reviewable diff)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [key for key in sorted(keys) for _ in range(keys[key])]
    write_private(path, "".join(line + "\n" for line in lines))
    return path


def compare_expected(
    records: Iterable[Mapping[str, Any]], server: str, path: Path
) -> Difference | None:
    """Records (left) against the expected file (right); None when there is no file."""
    expected = read_expected(path)
    return None if expected is None else Difference.of(expected_view(records, server), expected)

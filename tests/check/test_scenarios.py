"""``libtrace check`` on every scenario: trace == wire on each side, nothing lost, attribution.

Each test runs the CLI in a child (``--json --report DIR``) and reads its
verdict and full comparison.  Two scenarios send single messages larger than
the tracer's payload cap (16 KiB a syscall): nghttpd writes /big.txt's DATA
frames 32–49 KiB at a time, and PyMySQL sends a 49 KiB INSERT while MariaDB
answers a 2000-row SELECT with one 47 KiB write.  The trace reports those
cuts as gaps and the records differ from the wire's exactly there; the test
checks that nothing *else* differs, then marks itself xfail, naming the cap.
When the tracer captures such writes whole, the test passes (and the
expected-records check then applies to them as well).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from libtrace.services import SERVICES

from .conftest import DEBIAN_SCENARIOS, needs, needs_docker, report_of, run_cli

pytestmark = [pytest.mark.root, pytest.mark.bpf]

#: Scenarios with messages beyond the payload cap, and which records those cuts touch.
CUT_BY_PAYLOAD_CAP: dict[str, Callable[[dict[str, Any]], bool]] = {
    "http2": lambda record: (record["request"] or {}).get("path") == "/big.txt",
    "mysql": lambda record: record["request"] is None
    or " big" in (record["request"].get("query") or ""),
}
PAYLOAD_CAP_REASON = "messages over the 16 KiB payload cap: cut in the trace, whole on the wire"


def checked(scenario: str, backend: str, tmp_path: Path) -> dict[str, Any]:
    """Run the check; assert what must hold whatever the records: exit code, loss, report."""
    done = run_cli(scenario, "--backend", backend, "--json", "--report", str(tmp_path))
    report = report_of(done)
    assert done.returncode == (0 if report["ok"] else 1), done.stderr
    assert (tmp_path / f"check-{scenario}-{backend}.json").is_file()
    assert (tmp_path / f"check-{scenario}-{backend}.pcap").is_file()
    assert report["lost"] == 0
    assert report["pcap_records"] > 0
    assert {r["record"]["protocol"] for r in report["matches"]} == {SERVICES[scenario].protocol}
    assert report["attribution_ok"], report["containers"]
    return report


def assert_agrees_or_only_cut(scenario: str, report: dict[str, Any]) -> None:
    """Every side equals the wire (and the expected file), or differs only where the cap cut."""
    sides = report["sides"]
    if report["agrees"]:
        assert report["ok"] and all(side["agrees"] for side in sides.values())
        assert report["expected"] is not None and report["expected"]["agrees"], report["expected"]
        return
    cut = CUT_BY_PAYLOAD_CAP.get(scenario)
    assert cut is not None, {s: (v["only_in_trace"], v["only_in_pcap"]) for s, v in sides.items()}
    assert report["pipeline"]["gaps"] > 0 and report["pipeline"]["gap_bytes"] > 0
    for side in sides.values():
        differing = [entry["record"] for entry in side["only_in_trace"] + side["only_in_pcap"]]
        assert all(cut(record) for record in differing), differing
    pytest.xfail(PAYLOAD_CAP_REASON)


@pytest.mark.parametrize("scenario", [pytest.param(n, marks=needs(n)) for n in SERVICES])
def test_process_backend_trace_equals_the_wire(scenario: str, tmp_path: Path) -> None:
    report = checked(scenario, "process", tmp_path)

    assert report["service_container"] is None
    assert report["containers"] == {"client": [None], "server": [None]}
    assert_agrees_or_only_cut(scenario, report)


@needs_docker()
@pytest.mark.docker
@pytest.mark.parametrize("scenario", DEBIAN_SCENARIOS)
def test_docker_backend_trace_equals_the_wire_and_names_the_container(
    scenario: str, tmp_path: Path
) -> None:
    report = checked(scenario, "docker", tmp_path)

    container = report["service_container"]
    assert container is not None and container["name"].startswith(f"libtrace-{scenario}-")
    (seen,) = report["containers"]["server"]
    assert (seen["id"], seen["name"]) == (container["id"], container["name"])
    assert report["containers"]["client"] == [None]  # the clients run on the host
    assert_agrees_or_only_cut(scenario, report)

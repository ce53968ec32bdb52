"""Smoke runs of benchmarks/parse.py and benchmarks/pcap_vs_tshark.py.

They never assert a timing (a loaded machine must not fail the suite): only
the shape of the JSON, positive figures, and the record accounting, which
holds at any speed.  Protocols are found as the benchmarks find them, so
a new parser with a fixture joins by itself.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import dpkt  # type: ignore[import-untyped]
import pytest

from benchmarks.pcap_vs_tshark import _shift_sack, copy_address
from libtrace.parsers import PARSERS

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
#: A --quick run takes a few seconds; this only stops a hung one.
RUN_TIMEOUT_S = 180


def fixture_protocols() -> set[str]:
    """Protocols with a parser and at least one golden capture."""
    return {d.name for d in FIXTURES.iterdir()
            if d.name in PARSERS and any(d.glob("*.pcap"))}


def run_quick(script: str, *argv: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_parse_quick_prints_its_json() -> None:
    result = run_quick("parse.py")

    assert result["benchmark"] == "parse"
    protocols = result["protocols"]
    # Every protocol with a fixture is measured, whoever added it.
    assert set(protocols) >= fixture_protocols()
    assert set(protocols) <= set(PARSERS)
    for name, figures in protocols.items():
        assert figures["mb_per_s"] > 0, name
        assert figures["records_per_s"] > 0, name
        assert figures["payload_bytes"] > 0, name
        # Each pass emitted what the offline path did (the script checks every
        # pass and fails otherwise): at least one record per protocol.
        assert figures["records"] > 0 and figures["connections"] > 0, name
        assert figures["passes"] >= 1 and figures["cpu_s"] > 0, name
    assert result["seconds"] > 0


def test_parse_one_protocol() -> None:
    name = sorted(fixture_protocols())[0]
    result = run_quick("parse.py", "--protocol", name)

    assert list(result["protocols"]) == [name]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
def test_pcap_vs_tshark_quick_prints_its_json() -> None:
    result = run_quick("pcap_vs_tshark.py")

    assert result["benchmark"] == "pcap_vs_tshark"
    assert result["pcap_mb"] > 0 and result["packets"] > 0 and result["copies"] >= 1
    assert len(result["libtrace_s"]) == len(result["tshark_s"]) >= 1
    assert all(s > 0 for s in result["libtrace_s"] + result["tshark_s"])
    assert result["ratio_median"] > 0
    assert result["target"] == "< 1.0 (faster than tshark)"
    # copies × the records of each fixture: the copies' flows stayed distinct
    # and their rewritten sequence numbers consistent.
    assert result["records_ok"] is True
    assert result["records"] == result["records_expected"] > 0
    assert result["records_expected"] % result["copies"] == 0
    assert set(result["records_by_protocol"]) >= fixture_protocols()


def test_copy_addresses_are_distinct() -> None:
    originals = [bytes([127, 0, 0, 1]), bytes([127, 0, 0, 2])]
    made = {copy_address(a, i, unit, bits=2) for unit in range(50)
            for i, a in enumerate(originals)}
    assert len(made) == 100
    assert all(address[0] == 127 for address in made)
    v6 = copy_address(bytes(15) + b"\x01", 0, 7, bits=1)
    assert len(v6) == 16 and v6[0] == 0xFD


def test_sack_edges_shift_with_the_sequence_numbers() -> None:
    left, right = 0xFFFFFFF0, 0x00000010
    opts = (bytes((dpkt.tcp.TCP_OPT_NOP, dpkt.tcp.TCP_OPT_NOP, 5, 10))
            + left.to_bytes(4, "big") + right.to_bytes(4, "big"))

    shifted = _shift_sack(opts, 0x20)

    assert len(shifted) == len(opts)
    assert shifted[:4] == opts[:4]
    assert int.from_bytes(shifted[4:8], "big") == 0x10
    assert int.from_bytes(shifted[8:12], "big") == 0x30

"""The derived and generated fixtures are what their named generators write.

``libtrace.pcap.derive`` makes captures from real ones, ``libtrace.pcap.synth``
from a protocol's specification; the committed files must be exactly their
output (so that a generator change is a fixture change, reviewed with its
expected records), and each must hold records of its protocol.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from libtrace.output import PRIVATE_MODE
from libtrace.pcap import analyze
from libtrace.pcap.derive import DERIVED
from libtrace.pcap.synth import GENERATED

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.mark.parametrize("name", sorted(DERIVED))
def test_a_derived_fixture_is_its_generators_output(name: str, tmp_path: Path) -> None:
    directory, source, generator = DERIVED[name]
    written = generator(FIXTURES / directory / source, tmp_path / name)
    assert written.read_bytes() == (FIXTURES / directory / name).read_bytes()
    assert stat.S_IMODE(written.stat().st_mode) == PRIVATE_MODE  # it holds payloads
    records = [r.to_json() for r in analyze(str(written))]
    assert records and {r["protocol"] for r in records} == {directory}


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_a_generated_fixture_is_its_generators_output(name: str, tmp_path: Path) -> None:
    directory, generator = GENERATED[name]
    written = generator(tmp_path / name)
    assert written.read_bytes() == (FIXTURES / directory / name).read_bytes()
    records = [r.to_json() for r in analyze(str(written))]
    assert records and {r["protocol"] for r in records} == {directory}

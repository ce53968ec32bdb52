"""The fuzzing package (``tox -e fuzz-deep``) without its engine: the script
format, and every target over its seeds (which must all pass its invariants,
or each fuzz run would start with findings that are only stale seeds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzzing import _script, _seeds, _targets
from fuzzing.__main__ import MAX_LEN, main


def test_script_round_trip() -> None:
    ops = [_script.Op("request", _script.DATA, b"GET"), _script.Op("response", _script.GAP, size=7),
           _script.Op("response", _script.EOF), _script.Op("request", _script.DATA, b"x" * 70000)]
    flags, parsed = _script.parse(_script.encode(_script.MID_STREAM, ops), 1 << 20)
    assert flags == _script.MID_STREAM
    assert list(parsed) == [*ops[:3], _script.Op("request", _script.DATA, b"x" * 0xFFFF),
                            _script.Op("request", _script.DATA, b"x" * (70000 - 0xFFFF))]


def test_script_repeats_within_the_caps() -> None:
    # repeated data, 128 times over, in one piece (bit 4) and in pieces
    one = bytes([0, 0x70 | 7]) + (2).to_bytes(2, "big") + b"ab"
    assert [len(op.data) for op in _script.parse(one, 100)[1]] == [100]
    pieces = bytes([0, 0x60 | 7]) + (2).to_bytes(2, "big") + b"ab"
    assert len(list(_script.parse(pieces, 1 << 20)[1])) == _script.MAX_OPS
    assert list(_script.parse(b"", 10)[1]) == []


@pytest.mark.parametrize("target", _targets.names())
def test_every_seed_passes_its_target(target: str, tmp_path: Path) -> None:
    if target == "pcap":
        seeds = _seeds.pcap_seeds(MAX_LEN["pcap"])
    elif target == "decoder":
        seeds = _seeds.decoder_seeds()
    else:
        seeds = _seeds.parser_seeds(target, MAX_LEN["parser"])
    assert seeds
    run = _targets.make(target, tmp_path)  # the real limits: nothing is scaled here
    for seed in seeds:
        run(seed)


def test_a_parser_target_reports_a_broken_invariant(tmp_path: Path) -> None:
    """With the bound the target checks lowered to 2 bytes (the parser keeps its
    own), an incomplete bulk string is held beyond it."""
    run = _targets.parser_target("redis")
    script = _script.encode(0, [_script.Op("response", _script.DATA, b"$5\r\nabc")])
    run(script)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("libtrace.parsers._limits.MAX_BUFFER_BYTES", 2)
        with pytest.raises(_targets.InvariantError, match="7 bytes buffered in response"):
            run(script)
    assert _targets.retained(b"x" * 1000) >= 1000


def test_list_and_unknown_targets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    assert capsys.readouterr().out.split() == _targets.names()
    assert main(["nosuch"]) == 2

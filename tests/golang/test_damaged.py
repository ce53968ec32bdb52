"""Truncated and corrupted Go binaries: always one GoBinaryError, never a crash.

The CLI contract: a damaged file gives exit code 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import pytest

from libtrace.errors import GoBinaryError
from libtrace.tracer.golang import inspect_binary
from libtrace.tracer.golang._image import Image
from libtrace.tracer.golang.cli import add_go_inspect_command

from .conftest import go_binary, go_versions

pytestmark = pytest.mark.go_toolchain

#: One old (pointer buildinfo, 1.2 pclntab) and one new toolchain.
VERSIONS = tuple(v for v in go_versions() if v in ("1.15", "1.21"))

#: Random single-byte corruptions tried per binary in the Go metadata.
FLIPS = 150


def cli(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="libtrace")
    add_go_inspect_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["go-inspect", str(path), "--json"])
    code = args.handler(args)
    return code, capsys.readouterr().err


def section(binary: Path, name: str) -> tuple[int, int]:
    with Image(binary) as image:
        sec = image.sections[name]
        return sec.offset, sec.size


@pytest.mark.parametrize("stripped", [False, True], ids=["symbols", "stripped"])
@pytest.mark.parametrize("fraction", [0.01, 0.2, 0.5, 0.75, 0.99])
@pytest.mark.parametrize("version", VERSIONS)
def test_truncated(
    version: str,
    fraction: float,
    stripped: bool,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = go_binary("https_server", version, stripped=stripped).read_bytes()
    path = tmp_path / "cut"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(GoBinaryError):
        inspect_binary(path)
    code, err = cli(path, capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name", [".gopclntab", ".go.buildinfo"])
@pytest.mark.parametrize("version", VERSIONS)
def test_magic_destroyed(
    version: str, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = go_binary("https_server", version, stripped=True)
    data = bytearray(binary.read_bytes())
    offset, _ = section(binary, name)
    data[offset : offset + 4] = b"\0\0\0\0"
    path = tmp_path / "bad"
    path.write_bytes(data)
    with pytest.raises(GoBinaryError):
        inspect_binary(path)
    code, err = cli(path, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1


#: What each section decides in ``go-inspect --json``: a flip in one section may
#: change only these; everything else must read exactly as in the pristine binary.
DECIDED_BY = {
    ".gopclntab": {"symbols", "pclntab_format"},
    ".go.buildinfo": {"go_version", "main_path", "module_path", "abi", "offsets", "offsets_source"},
    ".debug_info": {"offsets", "offsets_source"},
    ".zdebug_info": {"offsets", "offsets_source"},
}


def flip_outcome(path: Path, pristine: dict[str, object], section_name: str) -> str:
    """Inspect a damaged binary: the name of the GoBinaryError it raised (its message
    one line naming the file), or ``"ok"`` when the damage changed nothing that
    ``section_name`` does not decide."""
    try:
        got = inspect_binary(path).to_json()
    except GoBinaryError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: ") and "\n" not in message, message
        return type(exc).__name__
    untouched = {k for k in pristine if k != "path"} - DECIDED_BY[section_name]
    assert {k: got[k] for k in untouched} == {k: pristine[k] for k in untouched}
    return "ok"


@pytest.mark.parametrize("name", [".gopclntab", ".go.buildinfo"])
@pytest.mark.parametrize("version", VERSIONS)
def test_random_corruption_raises_only_our_error(version: str, name: str, tmp_path: Path) -> None:
    binary = go_binary("https_server", version, stripped=True)
    pristine = binary.read_bytes()
    expected = inspect_binary(binary).to_json()
    offset, size = section(binary, name)
    rng = random.Random(f"{version}{name}")
    path = tmp_path / "flipped"
    outcomes = []
    # Header bytes matter most: bias half of the flips into the first 64 bytes.
    for i in range(FLIPS):
        data = bytearray(pristine)
        span = min(size, 64) if i % 2 else size
        at = offset + rng.randrange(span)
        data[at] = rng.randrange(256)
        path.write_bytes(data)
        outcomes.append(flip_outcome(path, expected, name))
    # The flips reached the section's checks: some were refused as damage.
    assert set(outcomes) - {"ok"}, f"no flip of {name} was detected"


@pytest.mark.parametrize("version", VERSIONS)
def test_corrupt_dwarf_raises_only_our_error(version: str, tmp_path: Path) -> None:
    binary = go_binary("https_server", version, stripped=False)
    pristine = binary.read_bytes()
    expected = inspect_binary(binary).to_json()
    assert expected["offsets_source"] == "dwarf"  # the section flipped here is the one read
    with Image(binary) as image:
        name = ".debug_info" if ".debug_info" in image.sections else ".zdebug_info"
    offset, size = section(binary, name)
    rng = random.Random(version)
    path = tmp_path / "flipped"
    outcomes = []
    for _ in range(FLIPS // 5):
        data = bytearray(pristine)
        data[offset + rng.randrange(size)] ^= 0xFF
        path.write_bytes(data)
        outcomes.append(flip_outcome(path, expected, name))
    assert set(outcomes) - {"ok"}, f"no flip of {name} was detected"

"""``pip install .`` without extras gives a working ``libtrace`` command and library.

The wheel is built from a copy of the source tree (the build writes ``build/``
and the egg-info beside the sources: the checkout stays untouched, BPF objects
included), installed in a fresh venv with its normal dependencies only, from
whatever index pip is configured with, and run from outside the checkout so
that nothing of the checkout is on ``sys.path``.  The test extra is not
installed, and a test proves it: pytest is not importable there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
#: What the wheel is built from (``pyproject.toml`` names the README).
SOURCES = ("pyproject.toml", "setup.py", "README.md", "libtrace")
#: Left out of the copy: caches, and artefacts of earlier builds.
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "obj", "build")
#: Seconds for a build or an install (the BPF objects compile; pip may download).
STEP_TIMEOUT_S = 600
PCAP = ROOT / "fixtures" / "redis" / "redis.pcap"

Completed = subprocess.CompletedProcess[str]


def _clean_env() -> dict[str, str]:
    """This process's environment (pip's index settings included), minus whatever
    would put the checkout or this venv on the new venv's path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.pop("VIRTUAL_ENV", None)
    return env


def _run(argv: list[str | Path], cwd: Path, timeout: float = 120) -> Completed:
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _ok(result: Completed) -> str:
    assert result.returncode == 0, (
        f"{' '.join(result.args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed without extras; returns its ``bin``."""
    if shutil.which("clang") is None:
        pytest.skip("building the wheel compiles the BPF objects: needs clang")
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "src"
    source.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=IGNORED)
        else:
            shutil.copy2(path, source / name)
    dist = tmp / "dist"
    _ok(_run([sys.executable, "-m", "pip", "wheel", source, "--no-deps", "-w", dist], tmp,
             STEP_TIMEOUT_S))  # fmt: skip
    (wheel,) = dist.glob("libtrace-*.whl")
    _ok(_run([sys.executable, "-m", "venv", tmp / "venv"], tmp, STEP_TIMEOUT_S))
    bin_dir = tmp / "venv" / "bin"
    _ok(_run([bin_dir / "python", "-m", "pip", "install", wheel], tmp, STEP_TIMEOUT_S))
    return bin_dir


def test_the_library_comes_from_the_wheel_and_imports_the_tracer(venv: Path) -> None:
    code = "import libtrace; libtrace.Tracer; print(libtrace.__file__)"
    where = Path(_ok(_run([venv / "python", "-c", code], venv.parent)).strip())
    assert where.is_relative_to(venv.parent), where  # not the checkout


@pytest.mark.parametrize("module", ["ringdecode", "respscan"])
def test_the_wheel_carries_the_c_modules(venv: Path, module: str) -> None:
    """Built by setup.py where a C compiler is (it is here: the BPF build needs one)."""
    code = f"from libtrace import native; print(native.{module}().__file__)"
    where = Path(_ok(_run([venv / "python", "-c", code], venv.parent)).strip())
    assert where.is_relative_to(venv.parent), where  # the wheel's, not compiled into a cache


def test_the_wheel_carries_the_mypyc_compiled_modules(venv: Path) -> None:
    """``pip install .`` compiles libtrace/compiled.py's modules (mypy is a build
    requirement; a C compiler is here)."""
    code = "import libtrace.compiled as c; print(c.compiled_modules() == c.MODULES)"
    assert _ok(_run([venv / "python", "-c", code], venv.parent)).strip() == "True"


def test_the_test_extra_is_not_installed(venv: Path) -> None:
    code = "import importlib.util as u; print(u.find_spec('pytest') is None)"
    assert _ok(_run([venv / "python", "-c", code], venv.parent)).strip() == "True"


def test_help(venv: Path) -> None:
    out = _ok(_run([venv / "libtrace", "--help"], venv.parent))
    assert "COMMAND" in out
    assert "trace" in out
    assert "compat" in out


def test_pcap_prints_the_records(venv: Path) -> None:
    out = _ok(_run([venv / "libtrace", "pcap", PCAP], venv.parent))
    header, *rows, summary = out.splitlines()
    assert header.split()[:2] == ["time", "proto"]
    expected = PCAP.with_suffix(".expected.jsonl").read_text().splitlines()
    assert len(rows) == len(expected)
    assert summary.startswith("summary: ") and f"{len(expected)} records" in summary
    assert all(row.split()[1] == "redis" for row in rows), rows


def test_compat_reads_the_packaged_objects(venv: Path) -> None:
    code = (
        "from libtrace.bpf.build import ALL_VARIANTS, PACKAGED_DIR as d; "
        "print(all((d / v.object_name).is_file() for v in ALL_VARIANTS))"
    )
    assert _ok(_run([venv / "python", "-c", code], venv.parent)).strip() == "True"
    out = _ok(_run([venv / "libtrace", "compat", "--kernel", "4.14"], venv.parent))
    assert "4.14" in out

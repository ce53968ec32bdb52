"""tests/prefetch.py fetches what the tests download, fails in one line, and CI runs it."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

from libtrace.host import apt
from libtrace.host.apt import AptSource
from libtrace.host.cache import CACHE_ENV
from libtrace.host.go_toolchains import GO_VERSIONS, VERSIONS_ENV, toolchain
from libtrace.vm.kernels import CATALOG

from . import prefetch
from .golang.conftest import go_versions

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("chosen", ["", "1.15,1.21"])
def test_the_go_toolchains_are_those_the_golang_tests_build_with(
    monkeypatch: pytest.MonkeyPatch, chosen: str
) -> None:
    monkeypatch.setenv(VERSIONS_ENV, chosen)
    fetched = [f.run.args[0] for f in prefetch.fetches()
               if isinstance(f.run, functools.partial) and f.run.func is toolchain]  # fmt: skip
    assert fetched == list(go_versions())
    assert fetched == (chosen.split(",") if chosen else list(GO_VERSIONS))


def test_every_catalog_kernel_the_tests_name_is_prefetched() -> None:
    """A test that names a catalog kernel resolves it, or shows it in a report that
    the sweep tests fill: either way the prefetch must have it (``debian-6.1`` but
    not ``debian-6.1`` inside ``debian-6.12``)."""
    named = {name for path in (ROOT / "tests").rglob("*.py")
             for name in re.findall(r"debian-\d+\.\d+(?![\d.])", path.read_text())
             if name in CATALOG}  # fmt: skip
    assert {"debian-5.10", "debian-7.3"} <= named  # the scan finds what is there
    missing = sorted(named - set(prefetch.KERNELS))
    assert not missing, f"add to tests/prefetch.py's KERNELS: {missing}"


def test_a_failed_fetch_exits_1_with_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_mirror = tmp_path / "fake-mirror"  # empty: apt finds no Release file in it
    fake_mirror.mkdir()
    monkeypatch.setattr(apt, "parse_sources", lambda: [AptSource(f"file:{fake_mirror}", ("sid",))])
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(VERSIONS_ENV, "1.21")
    assert prefetch.main() == 1
    out, err = capsys.readouterr()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("prefetch: could not fetch the Go 1.21 toolchain: Go 1.21 could not be")
    assert "Release file" in err  # apt's reason, not only ours
    assert "kernel" not in out  # the first failure ends the run


def _steps(text: str) -> list[str]:
    return [s.strip() for line in text.splitlines() if not line.lstrip().startswith("#")
            for s in line.split("&&") if s.strip()]  # fmt: skip


def test_ci_prefetches_then_runs_the_readmes_test_command_strictly() -> None:
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"^The tests[^\n]*:\n\n {4}(.+)$", readme, re.MULTILINE)
    assert command is not None
    readme_steps = _steps(command.group(1))
    assert readme_steps[-2:] == ["tox -e prefetch", "LIBTRACE_STRICT_SKIPS=1 tox -e py"]
    ci_steps = iter(_steps((ROOT / ".ci" / "run").read_text()))
    # ``in`` consumes the iterator up to the match: the steps must come in this order.
    assert all(step in ci_steps for step in readme_steps), "not in .ci/run, in this order"

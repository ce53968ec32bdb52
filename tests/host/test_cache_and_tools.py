"""The host layer's cache directory, its locks, and the tool runner's one error line."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from libtrace.errors import LibtraceError
from libtrace.host.cache import cache_dir, locked, user_cache_dir
from libtrace.host.tools import run_tool


class _Failed(LibtraceError):
    """A test's error class."""


def test_one_variable_moves_every_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("LIBTRACE_CACHE_DIR", raising=False)
    assert user_cache_dir() == tmp_path / "xdg" / "libtrace"
    assert cache_dir("kernels") == tmp_path / "xdg" / "libtrace" / "kernels"
    monkeypatch.setenv("LIBTRACE_CACHE_DIR", str(tmp_path / "moved"))
    assert cache_dir("go") == tmp_path / "moved" / "go"
    assert user_cache_dir() == tmp_path / "xdg" / "libtrace"  # the Docker images stay put


def test_the_lock_serializes_holders_and_creates_its_directory(tmp_path: Path) -> None:
    entry = tmp_path / "deep" / "entry"
    order: list[str] = []

    def second() -> None:
        with locked(entry):
            order.append("second")

    with locked(entry):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.2)
        order.append("first")
    thread.join(timeout=10)
    assert order == ["first", "second"]
    assert (tmp_path / "deep" / "entry.lock").is_file()


def test_a_tool_that_succeeds_gives_its_output(tmp_path: Path) -> None:
    out = run_tool([sys.executable, "-c", "import os; print(os.getcwd())"], "cwd", _Failed,
                   timeout=30, cwd=tmp_path)  # fmt: skip
    assert out.strip() == str(tmp_path)


def test_a_failing_tool_is_one_line_ending_with_its_last_words() -> None:
    script = "import sys; sys.stderr.write('one\\ntwo\\nthree\\n'); sys.exit(3)"
    with pytest.raises(_Failed) as info:
        run_tool([sys.executable, "-c", script], "x is corrupt", _Failed, timeout=30)
    assert str(info.value) == "x is corrupt (two three)"
    with pytest.raises(_Failed, match=r"^x is corrupt \(one two three\)$"):
        run_tool([sys.executable, "-c", script], "x is corrupt", _Failed, timeout=30,
                 tail_lines=3)  # fmt: skip
    with pytest.raises(_Failed, match=r"^quiet \(exit 4\)$"):
        run_tool([sys.executable, "-c", "raise SystemExit(4)"], "quiet", _Failed, timeout=30)


def test_a_tool_that_cannot_run_says_so() -> None:
    with pytest.raises(_Failed, match=r"^unpacking: /no/such/tool could not run \(") as info:
        run_tool(["/no/such/tool"], "unpacking", _Failed, timeout=30)
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(_Failed, match=r"could not run .*timed out"):
        run_tool([sys.executable, "-c", "import time; time.sleep(5)"], "slow", _Failed,
                 timeout=0.2)  # fmt: skip

"""``LIBTRACE_STRICT_SKIPS=1``: a skip that is not a missing privilege fails the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path, reason: str, strict: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_sessionfinish\n")
    (tmp_path / "test_one.py").write_text(
        "import pytest\n\n"
        f"def test_skipped():\n    pytest.skip({reason!r})\n\n"
        "def test_passes():\n    assert True\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LIBTRACE_STRICT_SKIPS": "1" if strict else "0"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tmp_path)], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120, check=False)  # fmt: skip


@pytest.mark.parametrize(("reason", "strict", "code"), [
    ("needs tshark", True, 1),
    ("needs tshark", False, 0),
    ("needs root: run the suite as root", True, 0),
])  # fmt: skip
def test_only_privilege_skips_pass_a_strict_run(
    tmp_path: Path, reason: str, strict: bool, code: int
) -> None:
    run = _run(tmp_path, reason, strict)
    assert run.returncode == code, run.stdout + run.stderr
    if code:
        assert "not a missing privilege" in run.stdout and "needs tshark" in run.stdout

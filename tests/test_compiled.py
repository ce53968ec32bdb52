"""The compiled build (``libtrace/compiled.py``): the parser and records tests
run again against the installed wheel, whose hot modules mypyc compiled.

The suite itself imports the checkout's pure-Python modules (``tests`` is a
package, so pytest puts the checkout first on ``sys.path``).  Here a pytest
run in a subprocess imports ``libtrace`` from outside the checkout first, so
that every ``libtrace`` module its tests import comes from the installed
wheel, and checks that they are the compiled ones.  Under tox that is the
wheel tox built; a development venv with an editable install has no compiled
wheel, and then this test says so and skips (tox runs it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from libtrace.compiled import MODULES

ROOT = Path(__file__).resolve().parents[1]
#: The tests that exercise the compiled modules, without root, Docker or VMs.
TEST_DIRS = ("tests/parsers", "tests/records")
MARKERS = "not fuzz and not slow and not docker and not bpf and not root"

#: Run outside the checkout: prints where libtrace comes from and what is compiled.
PROBE = (
    "import json, libtrace, libtrace.compiled as c; "
    "print(json.dumps({'file': libtrace.__file__, 'compiled': c.compiled_modules()}))"
)
#: Imports the installed libtrace before pytest puts the checkout on sys.path.
RUN_TESTS = (
    "import sys, libtrace, libtrace.compiled as c, pytest\n"
    "assert c.compiled_modules() == c.MODULES, c.compiled_modules()\n"
    "sys.exit(pytest.main(sys.argv[1:]))\n"
)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path_factory.mktemp("probe"), env=_env(),
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    probe: dict[str, Any] = json.loads(out.stdout)
    # (tox's venv lives inside the checkout too: compare the package directory)
    if Path(probe["file"]).resolve().parent == (ROOT / "libtrace").resolve():
        pytest.skip("libtrace is installed editable from the checkout: no compiled wheel here")
    return probe


def test_the_installed_wheel_runs_every_hot_module_compiled(installed: dict[str, Any]) -> None:
    assert tuple(installed["compiled"]) == MODULES


def test_the_parser_and_records_tests_pass_compiled(
    installed: dict[str, Any], tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", RUN_TESTS, "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT),
         "-m", MARKERS, *(str(ROOT / d) for d in TEST_DIRS)],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    tail = result.stdout[-3000:] + result.stderr[-2000:]
    assert result.returncode == 0, tail
    assert " passed" in result.stdout.splitlines()[-1], tail

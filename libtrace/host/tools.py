"""Run an external tool of the host and turn its failure into one error line.

:func:`run_tool` is the one way the host layer and the VM layer run a program
whose output they need (``dpkg-deb``, ``depmod``, ``tar``, ``go``): its
standard output on success, else the caller's error class with one line that
says what failed and ends with the tool's last words on stderr.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import LibtraceError

#: Lines of stderr a failure quotes (the last ones: where tools say why).
TAIL_LINES = 2


def stderr_tail(stderr: str, returncode: int, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` of ``stderr`` joined by spaces, or ``exit N`` when it is empty."""
    return " ".join(stderr.strip().splitlines()[-lines:]) or f"exit {returncode}"


def run_tool(
    argv: Sequence[str],
    what: str,
    error: type[LibtraceError],
    *,
    timeout: float,
    tail_lines: int = TAIL_LINES,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run ``argv`` to completion and return its standard output (text).

    Args:
        argv: the program and its arguments.
        what: what the run does, as the error's opening words
            (``"/tmp/x.deb is corrupt or truncated"``).
        error: the class of the error to raise.
        timeout: seconds the tool may take; longer counts as not running.
        tail_lines: lines of stderr the error ends with.

    Raises:
        error: ``"<what>: <tool> could not run (<reason>)"`` when it cannot be
            started or times out, ``"<what> (<stderr tail>)"`` when it exits
            non-zero.
    """
    try:
        proc = subprocess.run(
            list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise error(f"{what}: {argv[0]} could not run ({exc})") from exc
    if proc.returncode != 0:
        raise error(f"{what} ({stderr_tail(proc.stderr, proc.returncode, tail_lines)})")
    return proc.stdout

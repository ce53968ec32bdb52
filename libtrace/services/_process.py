"""The process backend: the server as a child process of this one.

Used on plain hosts and inside QEMU guests.  Output goes to ``server.log`` in
the work directory (a file, not a pipe, so a chatty server never blocks on a
full pipe); the server runs in its own session so that stopping it reaches
its workers too: SIGTERM to the group, then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

from ..output import open_private
from ._description import Service
from ._errors import ServiceError, failure
from ._procfs import process_tree
from ._running import ContainerInfo, Running

#: Seconds between SIGTERM and SIGKILL.
STOP_GRACE_S = 5.0
#: Seconds a preparation command may take (mariadb-install-db takes a few).
PREPARE_TIMEOUT_S = 180.0
#: The file in the work directory that collects the server's stdout and stderr.
LOG_NAME = "server.log"


class ProcessHandle:
    """A server started by :class:`ProcessBackend`."""

    container: ContainerInfo | None = None

    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid) if self.alive() else []

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(STOP_GRACE_S)
        # Workers that outlived their leader (or ignored SIGTERM) go too.
        self._signal(signal.SIGKILL)
        self.proc.wait()

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)


class ProcessBackend:
    """Runs servers as local processes."""

    name = "process"

    def check(self, service: Service) -> None:
        """Raise :class:`ServiceError` when the server program is not installed."""
        if shutil.which(service.program) is None and not Path(service.program).is_file():
            hint = f" (Debian package {service.package})" if service.package else ""
            raise ServiceError(f"{service.name}: {service.program} is not installed{hint}")

    def run_once(self, running: Running, argv: list[str]) -> None:
        """Run a preparation command to completion.

        Raises:
            ServiceError: it failed; the message ends with its output's tail.
        """
        try:
            proc = subprocess.run(
                argv,
                cwd=running.workdir,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=PREPARE_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServiceError(f"{running.service.name}: {argv[0]} could not run: {exc}") from exc
        if proc.returncode != 0:
            raise failure(
                f"{running.service.name}: {argv[0]} exited {proc.returncode}",
                proc.stdout.decode(errors="replace"),
            )

    def launch(self, running: Running, argv: list[str]) -> ProcessHandle:
        """Start the server in its own session, output to ``server.log``."""
        log_path = running.workdir / LOG_NAME
        with open_private(log_path) as log:  # a verbose server logs what it was sent
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=running.workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ServiceError(
                    f"{running.service.name}: {argv[0]} could not start: {exc}"
                ) from exc
        return ProcessHandle(proc, log_path)

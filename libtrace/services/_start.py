"""``start()``: one service on one backend, as a context manager that always cleans up."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from ._description import Service
from ._ports import check_listeners_are_ours, claim_port
from ._probes import wait_ready
from ._process import ProcessBackend
from ._registry import SERVICES
from ._running import Handle, Running


class Backend(Protocol):
    """Where a service runs: :class:`ProcessBackend` or :class:`DockerBackend`."""

    name: str

    def check(self, service: Service) -> None:
        """Make sure the server can be launched (installed program, built image)."""
        ...

    def run_once(self, running: Running, argv: list[str]) -> None:
        """Run a preparation command to completion."""
        ...

    def launch(self, running: Running, argv: list[str]) -> Handle:
        """Start the server."""
        ...


def make_backend(name: str) -> Backend:
    """The backend called ``name`` with default options."""
    if name == "process":
        return ProcessBackend()
    if name == "docker":
        from ._docker import DockerBackend  # the docker SDK only when asked for

        return DockerBackend()
    raise ValueError(f"unknown backend {name!r}: use 'process' or 'docker'")


@contextlib.contextmanager
def start(
    name: str | Service,
    backend: str | Backend = "process",
    *,
    host: str | None = None,
    port: int | None = None,
) -> Iterator[Running]:
    """Start a service, wait until it answers, yield it, and stop it on exit.

    Args:
        name: a key of :data:`SERVICES`, or a :class:`Service`.
        backend: ``"process"``, ``"docker"``, or a backend object.
        host, port: where to listen (default: the description's).

    Raises:
        ServiceError: the server, its image or the Docker daemon could not be
            started, or the port is held by another server (no traffic is ever
            sent to a server this did not start); nothing is left running.
    """
    service = SERVICES[name] if isinstance(name, str) else name
    runner = make_backend(backend) if isinstance(backend, str) else backend
    runner.check(service)
    with tempfile.TemporaryDirectory(prefix=f"libtrace-{service.name}-") as tmp:
        workdir = Path(tmp)
        # Servers that drop privileges (nginx workers, mosquitto) must read their files.
        os.chmod(workdir, 0o755)
        running = Running(service, runner.name, host or service.host, port or service.port, workdir)
        claim_port(service.name, running.host, running.port, udp=service.udp)
        for file_name, text in service.files(running).items():
            (workdir / file_name).write_text(text)
        for argv in service.prepare(running):
            runner.run_once(running, argv)
        handle = runner.launch(running, service.command(running))
        running.handle = handle
        try:
            wait_ready(running, handle, service.start_timeout)
            check_listeners_are_ours(service.name, running.host, running.port, handle.pids())
            yield running
        finally:
            handle.stop()

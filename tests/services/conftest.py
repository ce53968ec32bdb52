"""Fixtures of the services tests: free loopback endpoints and leftover checks."""

from __future__ import annotations

import os
import random
import shutil
import socket
from pathlib import Path

import pytest

from libtrace.services import SERVICES, Service
from libtrace.services._dns import GLIBC_DNS_PORT
from libtrace.services._docker import DockerBackend


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def endpoint(service: Service) -> tuple[str, int]:
    """Where a test runs ``service``: away from the defaults other sessions may be using.

    DNS keeps port 53 (glibc's resolver needs it) on a random loopback address.
    """
    if service.port == GLIBC_DNS_PORT:
        return f"127.0.{random.randrange(54, 250)}.{random.randrange(2, 250)}", GLIBC_DNS_PORT
    return "127.0.0.1", free_port()


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (to prove nothing was left running)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def missing_programs(service: Service) -> list[str]:
    """The server and client programs of ``service`` that this host lacks."""
    programs = (service.program, *service.clients)
    return [p for p in programs if shutil.which(p) is None and not Path(p).is_file()]


def needs_programs(name: str) -> pytest.MarkDecorator:
    missing = missing_programs(SERVICES[name])
    return pytest.mark.skipif(
        bool(missing), reason=f"needs {' '.join(missing)} (scripts/install-deps.sh)"
    )


def needs_clients(name: str) -> pytest.MarkDecorator:
    """Skip unless the host has the clients of ``name``'s traffic (Docker runs the server)."""
    missing = [p for p in SERVICES[name].clients if shutil.which(p) is None]
    return pytest.mark.skipif(
        bool(missing), reason=f"needs {' '.join(missing)} (scripts/install-deps.sh)"
    )


@pytest.fixture(scope="session")
def docker_backend() -> DockerBackend:
    """The Docker backend, with dockerd started when none runs (skips without docker.io/root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start dockerd and build images")
    if shutil.which("dockerd") is None or shutil.which("debootstrap") is None:
        pytest.skip("needs docker.io and debootstrap (scripts/install-deps.sh)")
    backend = DockerBackend()
    assert backend.client.ping()  # reach (or start) the daemon once, here
    return backend


def containers_named(backend: DockerBackend, prefix: str) -> list[str]:
    """Names of all containers (running or not) whose name starts with ``prefix``."""
    return [c.name for c in backend.client.containers.list(all=True) if c.name.startswith(prefix)]

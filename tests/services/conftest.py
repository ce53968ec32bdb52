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

"""What a protocol service is, independent of where it runs.

A :class:`Service` says how to run one real server (command line, config
files, one-off preparation such as creating a database), how to tell that it
is ready, what deterministic client traffic to drive against it, and what the
server itself counted.  The backends (``_process``, ``_docker``) only decide
*where* the command runs; every path in a command lies inside the running
service's work directory, which the Docker backend bind-mounts at the same
path, so one description serves both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._running import Running

#: Seconds a server may take from launch to ready, unless its description says otherwise.
DEFAULT_START_TIMEOUT_S = 20.0


def _no_files(running: Running) -> dict[str, str]:
    return {}


def _no_commands(running: Running) -> list[list[str]]:
    return []


def _no_paths() -> tuple[Path, ...]:
    return ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """One protocol server and its client traffic.

    Attributes:
        name: the registry key (``redis``, ``mysql``, …).
        protocol: the protocol name the parsers use for its traffic.
        package: the Debian package that provides the server, or None (tansu, the
            FAKE Dubbo server): those run from host files, bind-mounted for Docker.
        program: the server executable, checked before a process is started.
        port: the default port; ``host`` the default address (loopback).
        command: the server's argv for a running service (foreground, logging to stderr).
        files: config files to write into the work directory, name → text.
        prepare: one-off commands run to completion before the server (same backend).
        ready: a protocol probe; True once the server answers.
        traffic: drives the deterministic client traffic against a running service.
        variants: more traffic, of the protocol as real clients vary it (recorded as
            the ``<name>-variants`` fixture by ``python -m libtrace.services.record``;
            ``check`` keeps to ``traffic``), or None.
        stats: what the server counted (read from the server or its log), or None.
        clients: client programs ``traffic`` needs on the host.
        host_paths: host paths a container needs read-only (package-less services).
        image_extras: more Debian packages a Docker image needs than the server's own.
        start_timeout: seconds from launch to ready.
        udp: the server listens on UDP too (its port is claimed for both).
        fixture: the capture ``python -m libtrace.services.record`` writes of
            ``traffic`` into ``fixtures/<protocol>/`` (``variants``: the same name
            with ``-variants``), or None.
    """

    name: str
    protocol: str
    package: str | None
    program: str
    port: int
    command: Callable[[Running], list[str]]
    ready: Callable[[Running], bool]
    traffic: Callable[[Running], None]
    variants: Callable[[Running], None] | None = None
    host: str = "127.0.0.1"
    files: Callable[[Running], dict[str, str]] = _no_files
    prepare: Callable[[Running], list[list[str]]] = _no_commands
    stats: Callable[[Running], Mapping[str, int]] | None = None
    clients: tuple[str, ...] = ()
    host_paths: Callable[[], tuple[Path, ...]] = _no_paths
    image_extras: tuple[str, ...] = ()
    start_timeout: float = DEFAULT_START_TIMEOUT_S
    udp: bool = False
    fixture: str | None = None

    @property
    def image_packages(self) -> tuple[str, ...]:
        """The Debian packages a Docker image of this service installs."""
        return ((self.package,) if self.package else ()) + self.image_extras

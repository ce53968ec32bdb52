"""A started service: where it listens, which processes serve it, what it logged."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._description import Service


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """The container a service runs in, as the tracer attributes traffic to it.

    Attributes:
        id: the full container id.
        name: ``libtrace-<service>-<random>``.
        image: the image tag (``libtrace/<service>:<content hash>``).
        pid: the container's main process as the host sees it.
    """

    id: str
    name: str
    image: str
    pid: int


class Handle(Protocol):
    """What a backend returns for a launched server."""

    container: ContainerInfo | None

    def alive(self) -> bool:
        """True while the server runs."""
        ...

    def pids(self) -> list[int]:
        """The server's processes, host pids, main process first."""
        ...

    def log(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        ...

    def stop(self) -> None:
        """Stop the server and release everything it held (idempotent)."""
        ...


class Running:
    """A service that is ready: the object :func:`libtrace.services.start` yields.

    Attributes:
        service: its description.
        backend: ``"process"`` or ``"docker"``.
        host, port: where it listens.
        workdir: the temporary directory with its config, data and logs.
    """

    def __init__(self, service: Service, backend: str, host: str, port: int, workdir: Path) -> None:
        self.service = service
        self.backend = backend
        self.host = host
        self.port = port
        self.workdir = workdir
        self.handle: Handle | None = None

    def __repr__(self) -> str:
        return f"<Running {self.service.name} ({self.backend}) at {self.host}:{self.port}>"

    def _launched(self) -> Handle:
        if self.handle is None:
            raise RuntimeError(f"{self.service.name} has not been launched")
        return self.handle

    @property
    def container(self) -> ContainerInfo | None:
        """The container (Docker backend), or None for a plain process."""
        return self._launched().container

    def pids(self) -> list[int]:
        """Host pids of the server's processes, for the tracer's pid filter."""
        return self._launched().pids()

    def log(self) -> str:
        """The server's output so far."""
        return self._launched().log()

    def traffic(self) -> None:
        """Drive the service's deterministic client traffic against this server."""
        self.service.traffic(self)

    def server_stats(self) -> Mapping[str, int]:
        """What the server counted (empty when the service has no counters)."""
        return dict(self.service.stats(self)) if self.service.stats else {}

"""The Docker backend: each service in a container of its own image, on the host network.

Containers are named ``libtrace-<service>-<random>`` and labelled
``libtrace=1``; they run under ``docker-init`` (so a server that is not
written to be PID 1, like the Python fake Dubbo server, still stops on
SIGTERM) and are removed when the service stops, also after a failure.  The
work directory is bind-mounted at its own path, so config paths in a command
are the same inside and out; package-less services also get their host files
(tansu, the Python interpreter) read-only at their own paths.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

from ._description import Service
from ._dockerd import docker_client
from ._errors import ServiceError, failure
from ._images import LABELS, Progress, service_image
from ._procfs import process_tree
from ._running import ContainerInfo, Running

#: Seconds between SIGTERM and SIGKILL when a container stops.
STOP_GRACE_S = 5
#: Seconds a preparation container may take (mariadb-install-db takes a few).
PREPARE_TIMEOUT_S = 180


def _docker_errors() -> tuple[type[BaseException], ...]:
    import docker.errors  # type: ignore[import-untyped,import-not-found,unused-ignore]
    import requests.exceptions  # type: ignore[import-untyped,import-not-found,unused-ignore]

    return (docker.errors.DockerException, requests.exceptions.RequestException)


class DockerHandle:
    """A server container started by :class:`DockerBackend`."""

    def __init__(self, container: Any, image: str) -> None:
        self._container = container
        container.reload()
        self.container: ContainerInfo | None = ContainerInfo(
            id=container.id, name=container.name, image=image,
            pid=int(container.attrs["State"]["Pid"]),
        )  # fmt: skip

    def alive(self) -> bool:
        with contextlib.suppress(*_docker_errors()):
            self._container.reload()
            return bool(self._container.status == "running")
        return False

    def pids(self) -> list[int]:
        assert self.container is not None
        return process_tree(self.container.pid) if self.alive() else []

    def log(self) -> str:
        with contextlib.suppress(*_docker_errors()):
            return bytes(self._container.logs()).decode(errors="replace")
        return ""

    def stop(self) -> None:
        with contextlib.suppress(*_docker_errors()):
            self._container.stop(timeout=STOP_GRACE_S)
        with contextlib.suppress(*_docker_errors()):
            self._container.remove(force=True)


class DockerBackend:
    """Runs servers in containers of locally built images.

    Args:
        url: the Docker daemon's URL (default: ``$DOCKER_HOST`` or the local
            socket, where a missing daemon is started).
        progress: told about slow steps (debootstrap, image builds).
    """

    name = "docker"

    def __init__(self, url: str | None = None, progress: Progress | None = None) -> None:
        self.url = url
        self.progress = progress
        self._client: Any = None
        self._images: dict[str, str] = {}

    @property
    def client(self) -> Any:
        """The Docker client (the daemon is reached, or started, on first use)."""
        if self._client is None:
            self._client = docker_client(self.url)
        return self._client

    def check(self, service: Service) -> None:
        """Build (or find) the service's image."""
        try:
            self._images[service.name] = service_image(self.client, service, self.progress)
        except _docker_errors() as exc:
            raise ServiceError(f"image for {service.name} failed to build: {exc}") from exc

    def image(self, service: Service) -> str:
        """The image tag :meth:`check` found or built for ``service``."""
        if service.name not in self._images:
            self.check(service)
        return self._images[service.name]

    def _run(self, running: Running, argv: list[str], role: str) -> Any:
        service = running.service
        volumes = {str(running.workdir): {"bind": str(running.workdir), "mode": "rw"}}
        for path in service.host_paths():
            volumes[str(path)] = {"bind": str(path), "mode": "ro"}
        try:
            return self.client.containers.run(
                self.image(service), argv, detach=True, network_mode="host", init=True,
                name=f"libtrace-{service.name}-{role}{secrets.token_hex(4)}",
                labels={**LABELS, "libtrace.service": service.name},
                volumes=volumes, working_dir=str(running.workdir),
            )  # fmt: skip
        except _docker_errors() as exc:
            raise ServiceError(f"{service.name} (docker): container did not start: {exc}") from exc

    def run_once(self, running: Running, argv: list[str]) -> None:
        """Run a preparation command in a throwaway container of the service's image.

        Raises:
            ServiceError: it failed; the message ends with its output's tail.
        """
        container = self._run(running, argv, "prepare-")
        try:
            code = container.wait(timeout=PREPARE_TIMEOUT_S).get("StatusCode")
            if code != 0:
                raise failure(
                    f"{running.service.name} (docker): {argv[0]} exited {code}",
                    container.logs().decode(errors="replace"),
                )
        except _docker_errors() as exc:
            raise ServiceError(f"{running.service.name} (docker): {argv[0]}: {exc}") from exc
        finally:
            with contextlib.suppress(*_docker_errors()):
                container.remove(force=True)

    def launch(self, running: Running, argv: list[str]) -> DockerHandle:
        """Start the server's container."""
        container = self._run(running, argv, "")
        try:
            return DockerHandle(container, self.image(running.service))
        except BaseException:
            with contextlib.suppress(*_docker_errors()):
                container.remove(force=True)
            raise

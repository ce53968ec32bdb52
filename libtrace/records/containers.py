"""Container attribution: from an event's cgroup id (or its pid) to the container.

Theory of operation: ``bpf_get_current_cgroup_id()`` is the inode number of
the task's directory in the cgroup v2 hierarchy.  :class:`CgroupPaths` walks
that hierarchy once to map inodes to paths, and walks it again when an
unknown id shows up (a container started since), at most once per
:data:`RESCAN_INTERVAL_S`.  A container runtime names its cgroups after the
container: ``docker-<64 hex>.scope`` with the systemd driver,
``/docker/<64 hex>`` with the cgroupfs driver (:func:`container_id_of`).
When the cgroup id is 0 (kernels before 5.5 have no helper for it), unknown,
or names no container — with cgroup v1 the runtime places containers only in
the v1 hierarchies — the process's ``/proc/<pid>/cgroup`` is read instead.
The container's name and image come from the Docker API (:class:`DockerNames`),
asked once per container; without the ``docker`` SDK or a daemon they stay
``None`` and the failure is logged once at debug level.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: An unknown cgroup id triggers a rescan of the hierarchy at most this often:
#: a walk of a busy host's hierarchy costs milliseconds, ids arrive per event.
RESCAN_INTERVAL_S = 1.0
#: After the Docker API failed (no daemon), ask again only after this long.
DOCKER_RETRY_S = 30.0
#: Entries kept per cache; beyond, the cache starts afresh (containers come and go).
MAX_CACHED = 16384
#: Where cgroup v2 is mounted unless /proc/self/mounts says otherwise.
DEFAULT_CGROUP_ROOT = "/sys/fs/cgroup"
#: Seconds one Docker API call may take.
DOCKER_TIMEOUT_S = 2

#: Cgroup path patterns that carry a container id (first group).
CONTAINER_PATTERNS = (
    re.compile(r"(?:^|/)docker-([0-9a-f]{64})\.scope(?:/|$)"),  # systemd driver
    re.compile(r"(?:^|/)docker/([0-9a-f]{64})(?:/|$)"),  # cgroupfs driver
)


@dataclass(frozen=True, slots=True)
class Container:
    """The container a process runs in."""

    id: str  #: the full 64-hex-digit id
    name: str | None  #: None when the Docker API could not be asked
    image: str | None  #: the image as the container was created from it

    def to_dict(self) -> dict[str, str | None]:
        return {"id": self.id, "name": self.name, "image": self.image}


def container_id_of(path: str) -> str | None:
    """The container id a cgroup path names, or ``None``."""
    for pattern in CONTAINER_PATTERNS:
        match = pattern.search(path)
        if match:
            return match.group(1)
    return None


def cgroup2_root(mounts: str = "/proc/self/mounts") -> str:
    """Where the cgroup v2 hierarchy is mounted (``/sys/fs/cgroup/unified`` on hybrid hosts)."""
    try:
        with open(mounts) as lines:
            for line in lines:
                fields = line.split()
                if len(fields) > 2 and fields[2] == "cgroup2":
                    return fields[1]
    except OSError:
        pass
    return DEFAULT_CGROUP_ROOT


class CgroupPaths:
    """Map cgroup ids (directory inodes) to paths below the cgroup v2 root."""

    def __init__(
        self, root: str | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.root = root or cgroup2_root()
        self._clock = clock
        self._paths: dict[int, str] = {}
        self._scanned_at: float | None = None

    def path(self, cgroup_id: int) -> str | None:
        """The path (``/`` for the root) of ``cgroup_id``, rescanning if it is new."""
        found = self._paths.get(cgroup_id)
        if found is None:
            now = self._clock()
            if self._scanned_at is None or now - self._scanned_at >= RESCAN_INTERVAL_S:
                self._scanned_at = now
                self._paths = self._scan()
                found = self._paths.get(cgroup_id)
        return found

    def _scan(self) -> dict[int, str]:
        paths: dict[int, str] = {}
        try:
            paths[os.stat(self.root).st_ino] = "/"
        except OSError:
            return paths
        stack = [(self.root, "")]
        while stack:
            directory, relative = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue  # removed while we walked
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    path = f"{relative}/{entry.name}"
                    paths[entry.inode()] = path
                    stack.append((entry.path, path))
        return paths


def proc_cgroup_paths(pid: int, proc: str = "/proc") -> list[str]:
    """Every cgroup path of ``pid`` (one per hierarchy), or [] if it is gone."""
    try:
        with open(f"{proc}/{pid}/cgroup") as lines:
            return [line.rstrip("\n").split(":", 2)[2] for line in lines if line.count(":") >= 2]
    except OSError:
        return []


class DockerNames:
    """Container name and image from the Docker API, cached per container."""

    def __init__(
        self,
        client_factory: Callable[[], Any] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = client_factory or _docker_client
        self._clock = clock
        self._client: Any = None
        self._failed_at: float | None = None
        self._logged = False
        self._known: dict[str, tuple[str | None, str | None]] = {}

    def lookup(self, container_id: str) -> tuple[str | None, str | None]:
        """(name, image) of the container, ``(None, None)`` when Docker cannot say."""
        known = self._known.get(container_id)
        if known is not None:
            return known
        client = self._connect()
        if client is None:
            return None, None
        try:
            attrs = client.containers.get(container_id).attrs
        except Exception as exc:  # the SDK's errors, requests' and socket errors alike
            if type(exc).__name__ != "NotFound":
                self._fail(exc)
                return None, None
            found: tuple[str | None, str | None] = (None, None)  # gone already
        else:
            found = (
                attrs.get("Name", "").lstrip("/") or None,
                (attrs.get("Config") or {}).get("Image"),
            )
        if len(self._known) >= MAX_CACHED:
            self._known.clear()
        self._known[container_id] = found
        return found

    def _connect(self) -> Any:
        if self._client is not None:
            return self._client
        if self._failed_at is not None and self._clock() - self._failed_at < DOCKER_RETRY_S:
            return None
        try:
            self._client = self._factory()
        except Exception as exc:  # no SDK, no daemon, no socket: attribution goes on without
            self._fail(exc)
        return self._client

    def _fail(self, exc: Exception) -> None:
        self._client, self._failed_at = None, self._clock()
        if not self._logged:
            self._logged = True
            log.debug("Docker API unavailable, container names and images unknown: %s", exc)


def _docker_client() -> Any:
    import docker  # type: ignore[import-untyped,import-not-found,unused-ignore]

    return docker.from_env(timeout=DOCKER_TIMEOUT_S)


class ContainerResolver:
    """Which container, if any, an event's process runs in.

    Args:
        cgroups: the cgroup id → path map (default: the host's cgroup v2 hierarchy).
        docker: the name and image source (default: the Docker API).
        proc: the procfs root, for ``/proc/<pid>/cgroup``.
    """

    def __init__(
        self,
        cgroups: CgroupPaths | None = None,
        docker: DockerNames | None = None,
        proc: str = "/proc",
    ) -> None:
        self.cgroups = cgroups or CgroupPaths()
        self.docker = docker or DockerNames()
        self.proc = proc

    def resolve(self, cgroup_id: int, pid: int) -> Container | None:
        """The container of a process in cgroup ``cgroup_id`` with id ``pid``, or ``None``.

        Called once per connection, so only the walks and the API calls are cached.
        """
        path = self.cgroups.path(cgroup_id) if cgroup_id else None
        container_id = container_id_of(path) if path is not None else None
        if container_id is None:
            # Not in a container, or only cgroup v1 knows the container.
            for proc_path in proc_cgroup_paths(pid, self.proc):
                container_id = container_id_of(proc_path)
                if container_id is not None:
                    break
        if container_id is None:
            return None
        return Container(container_id, *self.docker.lookup(container_id))

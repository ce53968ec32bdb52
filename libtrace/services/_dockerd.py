"""A Docker client, starting ``dockerd`` first when this host runs none.

On this machine kind no Docker engine runs by default, and the options that
work are ``--iptables=false --bridge=none`` (containers use the host network).
The daemon is started in its own session and left running for later callers
(it is shared infrastructure, like the image cache); its log goes to the
cache directory.  An explicit URL that does not answer is an error, never a
reason to start a daemon somewhere else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from ..host.cache import locked, user_cache_dir
from ._errors import ServiceError, failure

#: The socket a default dockerd listens on.
DEFAULT_URL = "unix:///var/run/docker.sock"
#: The options that work here: no iptables, no bridge (containers use --network host).
DOCKERD_OPTIONS = ("--iptables=false", "--bridge=none")
#: Seconds dockerd may take to answer after it was started (it starts containerd first).
DAEMON_START_TIMEOUT_S = 60.0
#: Seconds one API call may take (image imports and commits are the slow ones).
API_TIMEOUT_S = 600


def cache_dir() -> Path:
    """``~/.cache/libtrace/docker`` (or under ``$XDG_CACHE_HOME``)."""
    return user_cache_dir() / "docker"


def _connect(url: str) -> Any | None:
    import docker  # type: ignore[import-untyped,import-not-found,unused-ignore]
    import docker.errors  # type: ignore[import-untyped,import-not-found,unused-ignore]
    import requests.exceptions  # type: ignore[import-untyped,import-not-found,unused-ignore]

    try:
        client = docker.DockerClient(base_url=url, timeout=API_TIMEOUT_S)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
        return None
    return client


def docker_client(url: str | None = None) -> Any:
    """A ``docker.DockerClient`` that answered a ping.

    Args:
        url: the daemon's URL; default ``$DOCKER_HOST`` or the local socket, in
            which case a missing daemon is started.

    Raises:
        ServiceError: no daemon answers at an explicit URL, dockerd is not
            installed, or it did not come up (the message ends with its log).
    """
    target = url or os.environ.get("DOCKER_HOST") or DEFAULT_URL
    client = _connect(target)
    if client is not None:
        return client
    if target != DEFAULT_URL:
        raise ServiceError(f"no Docker daemon answers at {target}")
    with locked(cache_dir() / "dockerd"):
        return _connect(target) or _start_dockerd(target)


def _start_dockerd(url: str) -> Any:
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise ServiceError("no Docker daemon runs and dockerd is not installed (docker.io)")
    log_path = cache_dir() / "dockerd.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [dockerd, *DOCKERD_OPTIONS],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + DAEMON_START_TIMEOUT_S
    while (client := _connect(url)) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            reason = "exited" if proc.returncode != -9 else "did not answer in time"
            raise failure(f"dockerd {reason} ({' '.join(DOCKERD_OPTIONS)})", _tail(log_path))
        time.sleep(0.2)
    return client


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-4000:]
    except OSError:
        return ""

"""Docker images built here, without a registry: a minbase Debian rootfs plus one package.

Theory of operation:

1. **Base rootfs** (built once per suite and mirror): ``debootstrap
   --variant=minbase`` from the mirror the system's apt configuration names
   (:mod:`libtrace.host.apt`), plus ``procps`` and ``iproute2`` so that testinfra
   can check processes and sockets inside containers, with the system's
   suites as its sources list and a ``policy-rc.d`` that keeps packages from
   starting services.  It is cached as ``base-<key>.tar`` under
   ``~/.cache/libtrace/docker/`` and ``docker import``-ed as ``libtrace/base:<key>``.
2. **Service image**: a container of the base image runs ``apt-get install``
   of the service's package (host network), and is committed as
   ``libtrace/<service>:<key>``, so every service image shares the base layer
   and costs only its package install.

Keys are content hashes: the base key of the suite, mirror and base recipe;
the service key of the base key, the package list and the install recipe.
Config files are not part of an image (they are written per run into the
bind-mounted work directory), so changing a config never rebuilds one.
Services without a package run in the base image from bind-mounted host files.
Builds take a file lock, so parallel callers build each image once.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..host.apt import archive_uris, parse_sources, sources_list
from ..host.cache import locked
from ._description import Service
from ._dockerd import cache_dir
from ._errors import ServiceError, failure

#: Packages every image has: testinfra's ``ps`` and ``ss`` inside containers.
BASE_PACKAGES = ("procps", "iproute2")
#: Seconds debootstrap may take (about 25 s here; a slow mirror takes longer).
DEBOOTSTRAP_TIMEOUT_S = 1200
#: Seconds one package install may take inside a build container.
INSTALL_TIMEOUT_S = 1200
#: Labels on everything this module creates, so leftovers can be found.
LABELS = {"libtrace": "1"}
#: Keeps Debian packages from starting their services while they are installed.
POLICY_RC_D = "#!/bin/sh\nexit 101\n"
#: The install step of a service image; part of its key.
INSTALL_SCRIPT = (
    "set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -q; "
    "apt-get install -y -q --no-install-recommends {packages}; "
    "apt-get clean; rm -rf /var/lib/apt/lists/*"
)

Progress = Callable[[str], None]


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def host_codename() -> str:
    """The Debian suite of this host (``bookworm``), from ``/etc/os-release``."""
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    raise ServiceError("/etc/os-release names no Debian suite to build images from")


def _base_recipe() -> tuple[str, str, str]:
    """(suite, mirror, sources list) of the base rootfs."""
    suite = host_codename()
    entries = parse_sources()
    try:
        mirror, _ = archive_uris(entries)
        sources = sources_list((suite, f"{suite}-updates", f"{suite}-security"), entries)
    except Exception as exc:  # DownloadError: no Debian archive configured
        raise ServiceError(f"cannot build a base image: {exc}") from exc
    return suite, mirror, sources


def base_key() -> str:
    """The content key of the base rootfs."""
    suite, mirror, sources = _base_recipe()
    return _digest("base-v1", suite, mirror, sources, *BASE_PACKAGES, POLICY_RC_D)


def base_tarball(progress: Progress | None = None) -> Path:
    """The cached base rootfs tarball, built with debootstrap when missing.

    Raises:
        ServiceError: debootstrap or tar failed (the message ends with their output).
    """
    suite, mirror, sources = _base_recipe()
    tarball = cache_dir() / f"base-{base_key()}.tar"
    with locked(tarball):
        if tarball.exists():
            return tarball
        if shutil.which("debootstrap") is None:
            raise ServiceError("cannot build a base image: debootstrap is not installed")
        if progress:
            progress(f"debootstrap {suite} (minbase) into {tarball}")
        with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
            root = Path(tmp) / "root"
            _tool(
                ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                 suite, str(root), mirror],
                "debootstrap",
            )  # fmt: skip
            (root / "etc/apt/sources.list").write_text(sources)
            policy = root / "usr/sbin/policy-rc.d"
            policy.write_text(POLICY_RC_D)
            policy.chmod(0o755)
            for deb in (root / "var/cache/apt/archives").glob("*.deb"):
                deb.unlink()
            partial = tarball.with_suffix(".partial")
            _tool(["tar", "-C", str(root), "-cf", str(partial), "."], "tar")
            partial.rename(tarball)
    return tarball


def _tool(argv: list[str], what: str) -> None:
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceError(f"cannot build a base image: {what} could not run: {exc}") from exc
    if proc.returncode != 0:
        raise failure(f"cannot build a base image: {what} exited {proc.returncode}",
                      proc.stdout + proc.stderr)  # fmt: skip


def _has_image(client: Any, tag: str) -> bool:
    import docker.errors  # type: ignore[import-untyped,import-not-found,unused-ignore]

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def base_image(client: Any, progress: Progress | None = None) -> str:
    """The tag of the imported base image, importing (and building) it when missing."""
    tag = f"libtrace/base:{base_key()}"
    if _has_image(client, tag):
        return tag
    tarball = base_tarball(progress)
    with locked(tarball.with_suffix(".import")):
        if not _has_image(client, tag):
            repository, _, version = tag.partition(":")
            client.api.import_image_from_file(
                str(tarball), repository=repository, tag=version,
                changes=[f"LABEL {k}={v}" for k, v in LABELS.items()],
            )  # fmt: skip
    if not _has_image(client, tag):
        raise ServiceError(f"docker import of {tarball} did not produce {tag}")
    return tag


def image_tag(service: Service, base: str) -> str:
    """The content-addressed tag of ``service``'s image on top of the base image ``base``."""
    if not service.image_packages:
        return base
    key = _digest(base, *service.image_packages, INSTALL_SCRIPT)
    return f"libtrace/{service.name}:{key}"


def service_image(client: Any, service: Service, progress: Progress | None = None) -> str:
    """The tag of ``service``'s image, built when missing.

    Raises:
        ServiceError: the package install failed; the message ends with apt's output,
            and the build container is removed.
    """
    base = base_image(client, progress)
    tag = image_tag(service, base)
    if _has_image(client, tag):
        return tag
    with locked(cache_dir() / tag.replace("/", "_").replace(":", "_")):
        if not _has_image(client, tag):
            if progress:
                progress(f"building {tag}: apt-get install {' '.join(service.image_packages)}")
            _build(client, service, base, tag)
    return tag


def _build(client: Any, service: Service, base: str, tag: str) -> None:
    script = INSTALL_SCRIPT.format(packages=" ".join(service.image_packages))
    container = client.containers.run(
        base, ["/bin/sh", "-c", script], detach=True, network_mode="host",
        name=f"libtrace-build-{service.name}-{secrets.token_hex(4)}", labels=LABELS,
    )  # fmt: skip
    try:
        status = container.wait(timeout=INSTALL_TIMEOUT_S)
        if status.get("StatusCode") != 0:
            raise failure(
                f"image {tag} failed to build: apt-get exited {status.get('StatusCode')}",
                container.logs().decode(errors="replace"),
            )
        repository, _, version = tag.partition(":")
        container.commit(
            repository=repository, tag=version,
            conf={"Labels": {**LABELS, "libtrace.packages": " ".join(service.image_packages)}},
        )  # fmt: skip
    finally:
        container.remove(force=True)

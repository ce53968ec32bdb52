"""Container attribution: cgroup paths, the cgroup id → path walk, Docker names, real cgroups."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from libtrace import EventType, Tracer
from libtrace.records import (
    CgroupPaths,
    ContainerResolver,
    DockerNames,
    RecordPipeline,
    container_id_of,
)
from libtrace.records.containers import RESCAN_INTERVAL_S, cgroup2_root

from ..tracing import drain
from ..waiting import wait_for
from ._events import records_json
from ._live import redis_server, traced

HEX = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"/system.slice/docker-{HEX}.scope", HEX),  # systemd driver
        (f"/docker/{HEX}", HEX),  # cgroupfs driver
        (f"/kubepods/pod1/docker/{HEX}/init", HEX),
        ("/user.slice/user-0.slice/session-1.scope", None),
        (f"/system.slice/docker-{HEX[:12]}.scope", None),  # short ids are not ids
        (f"/notdocker-{HEX}.scope", None),
        ("/", None),
    ],
)
def test_container_id_of_cgroup_paths(path: str, expected: str | None) -> None:
    assert container_id_of(path) == expected


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_cgroup_ids_map_to_paths_and_new_ones_rescan_at_most_once_a_second(
    tmp_path: Path,
) -> None:
    clock = Clock()
    scope = tmp_path / "system.slice" / f"docker-{HEX}.scope"
    scope.mkdir(parents=True)
    paths = CgroupPaths(str(tmp_path), clock=clock)

    assert paths.path(os.stat(scope).st_ino) == f"/system.slice/docker-{HEX}.scope"
    assert paths.path(os.stat(tmp_path).st_ino) == "/"
    late = tmp_path / "late"
    late.mkdir()
    clock.now += RESCAN_INTERVAL_S / 2
    assert paths.path(os.stat(late).st_ino) is None  # too soon to walk again
    clock.now += RESCAN_INTERVAL_S
    assert paths.path(os.stat(late).st_ino) == "/late"


class FakeContainers:
    def __init__(self, known: dict[str, dict[str, Any]]) -> None:
        self.known, self.calls = known, 0

    def get(self, container_id: str) -> Any:
        self.calls += 1
        if container_id not in self.known:
            raise type("NotFound", (Exception,), {})(container_id)
        return type("C", (), {"attrs": self.known[container_id]})()


class FakeClient:
    def __init__(self, known: dict[str, dict[str, Any]]) -> None:
        self.containers = FakeContainers(known)


def test_docker_names_come_from_the_api_once_per_container() -> None:
    client = FakeClient({HEX: {"Name": "/web", "Config": {"Image": "nginx:local"}}})
    names = DockerNames(lambda: client)

    assert names.lookup(HEX) == ("web", "nginx:local")
    assert names.lookup(HEX) == ("web", "nginx:local")
    assert names.lookup("f" * 64) == (None, None)  # gone: NotFound
    assert client.containers.calls == 2


def test_without_a_docker_daemon_names_are_none_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = []

    def no_daemon() -> Any:
        calls.append(1)
        raise ConnectionError("no such socket")

    clock = Clock()
    names = DockerNames(no_daemon, clock=clock)
    with caplog.at_level(logging.DEBUG, logger="libtrace.records.containers"):
        assert names.lookup(HEX) == (None, None)
        assert names.lookup(HEX) == (None, None)
    assert len(calls) == 1  # not asked again at once
    assert len([r for r in caplog.records if "Docker API unavailable" in r.message]) == 1


def test_cgroup_id_zero_falls_back_to_proc_pid_cgroup(tmp_path: Path) -> None:
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "cgroup").write_text(f"4:memory:/docker/{HEX}\n0::/\n")
    (tmp_path / "77").mkdir()
    (tmp_path / "77" / "cgroup").write_text("0::/user.slice\n")
    resolver = ContainerResolver(
        CgroupPaths(str(tmp_path)), DockerNames(lambda: FakeClient({})), proc=str(tmp_path)
    )

    found = resolver.resolve(0, 4242)
    assert found is not None and found.to_dict() == {"id": HEX, "name": None, "image": None}
    assert resolver.resolve(0, 77) is None
    assert resolver.resolve(0, 999999) is None  # gone


@pytest.fixture
def docker_named_cgroup() -> Iterator[Path]:
    """A real cgroup v2 directory named like a systemd-driver Docker container's."""
    root = Path(cgroup2_root())
    if not (root / "cgroup.procs").exists():
        pytest.skip(f"no cgroup v2 hierarchy at {root}")
    parent = root / f"libtrace-test-{uuid.uuid4().hex[:8]}.slice"
    scope = parent / f"docker-{HEX}.scope"
    scope.mkdir(parents=True)
    try:
        yield scope
    finally:
        scope.rmdir()  # its process has exited by now
        parent.rmdir()


@pytest.mark.root
@pytest.mark.bpf
@pytest.mark.skipif(
    shutil.which("redis-server") is None or shutil.which("redis-cli") is None,
    reason="needs redis-server and redis-cli",
)
def test_process_in_a_docker_named_cgroup_gets_its_id_by_cgroup_id_docker_names_absent(
    docker_named_cgroup: Path,
) -> None:
    """The client runs in a real cgroup named ``docker-<id>.scope``; no Docker container has
    that id, so the Docker API (present or not) gives no name or image: they are None."""
    port = 26384
    script = (
        f"echo $$ > {docker_named_cgroup}/cgroup.procs && "
        f"exec redis-cli -p {port} SET where container"
    )
    with redis_server(port), Tracer(ports=(port,), go_tls=False) as tracer:
        events = traced(tracer, ["sh", "-c", script])
    pipeline = RecordPipeline(containers=ContainerResolver())
    records = records_json(pipeline, events)

    inode = os.stat(docker_named_cgroup).st_ino
    client_events = [e for e in events if e.comm == "redis-cli" and e.type is EventType.DATA]
    assert client_events and {e.cgroup_id for e in client_events} == {inode}
    by_side = {r["side"]: r for r in records}
    assert set(by_side) == {"client", "server"}
    assert by_side["client"]["container"] == {"id": HEX, "name": None, "image": None}
    assert by_side["server"]["container"] is None  # redis-server runs on the host


def test_resolver_on_this_process_outside_containers_is_none() -> None:
    resolver = ContainerResolver()
    with open(f"/proc/{os.getpid()}/cgroup") as lines:
        if any(container_id_of(line) for line in lines):
            pytest.skip("this test itself runs in a container")
    assert resolver.resolve(0, os.getpid()) is None


#: A tiny image with busybox's sh, nc and sleep (no registry here: built by docker import).
BUSYBOX_IMAGE = "libtrace-test-busybox:1"


def docker_client_or_skip() -> Any:
    """The Docker SDK's client; skips only when no engine listens on the local socket
    (or this user may not use it).  The SDK is a dependency: its absence, and any
    failure of an engine that is there, fail the test."""
    import docker  # type: ignore[import-untyped,import-not-found,unused-ignore]

    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        path = host.removeprefix("unix://")
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(path)
            except (FileNotFoundError, ConnectionRefusedError, PermissionError) as exc:
                pytest.skip(f"needs a running Docker engine: {path}: {exc.strerror}")
    client = docker.from_env(timeout=10)
    assert client.ping()
    return client


def busybox_image(client: Any, tmp_path: Path) -> str:
    """Import a root filesystem of the static busybox as BUSYBOX_IMAGE, once."""
    busybox = shutil.which("busybox")
    if (
        busybox is None
        or "static"
        not in subprocess.run(
            ["file", "-L", busybox], capture_output=True, text=True, check=False
        ).stdout
    ):
        pytest.skip("needs a static busybox (busybox-static)")
    if not client.images.list(name=BUSYBOX_IMAGE):
        root = tmp_path / "rootfs"
        (root / "bin").mkdir(parents=True)
        shutil.copy(busybox, root / "bin" / "busybox")
        for applet in ("sh", "nc", "sleep", "printf"):
            (root / "bin" / applet).symlink_to("busybox")
        tar = tmp_path / "rootfs.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(tar), "."], check=True)
        subprocess.run(
            ["docker", "import", str(tar), BUSYBOX_IMAGE],
            check=True,
            capture_output=True,
            timeout=120,
        )
    return BUSYBOX_IMAGE


@pytest.mark.root
@pytest.mark.bpf
@pytest.mark.docker
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_records_from_a_docker_container_carry_its_id_name_and_image(tmp_path: Path) -> None:
    client = docker_client_or_skip()
    image = busybox_image(client, tmp_path)
    port, name = 26385, f"libtrace-test-{uuid.uuid4().hex[:8]}"
    # The container stays up after its PING until the test has its record: the
    # container is resolved while it runs (its cgroup goes with it).
    ping = (
        f"printf '*1\\r\\n$4\\r\\nPING\\r\\n' | nc -w 1 127.0.0.1 {port}; "
        "while [ ! -e /released ]; do sleep 0.1; done"
    )
    records: list[dict[str, Any]] = []
    with redis_server(port), Tracer(ports=(port,), go_tls=False) as tracer:
        pipeline = RecordPipeline(containers=ContainerResolver())
        container = client.containers.run(
            image, ["sh", "-c", ping], name=name, network_mode="host", detach=True
        )
        try:

            def client_record() -> bool:
                records.extend(r for e in tracer.poll(50) for r in pipeline.feed(e))
                return any(r.side == "client" for r in records)

            wait_for(client_record, "the container's PING record", 30)
            assert container.exec_run(["sh", "-c", ": > /released"]).exit_code == 0
            assert container.wait(timeout=30)["StatusCode"] == 0
            records += [r for e in drain(tracer) for r in pipeline.feed(e)]
            records += pipeline.flush()
        finally:
            container.remove(force=True)

    by_side = {r.side: r.to_json() for r in records}
    assert set(by_side) == {"client", "server"}
    assert by_side["client"]["container"] == {"id": container.id, "name": name, "image": image}
    assert by_side["client"]["request"]["command"] == "PING"
    assert by_side["server"]["container"] is None  # redis-server runs on the host

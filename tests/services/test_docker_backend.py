"""Every service in a container: image built and cached, testinfra checks, traffic, cleanup."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import testinfra

from libtrace.services import SERVICES, ServiceError, _images, start
from libtrace.services._docker import DockerBackend
from libtrace.services._images import INSTALL_SCRIPT, image_tag, service_image

from ._expect import EXPECTED_COUNTS, assert_counted
from .conftest import containers_named, endpoint, free_port, needs_clients

pytestmark = [pytest.mark.root, pytest.mark.docker]

#: The server's process name inside each container (what ``ps`` shows as comm).
SERVER_COMM = {
    "redis": "redis-server", "mysql": "mariadbd", "kafka": "tansu", "mqtt": "mosquitto",
    "dns": "dnsmasq", "http1": "nginx", "http2": "nghttpd", "dubbo": Path(
        SERVICES["dubbo"].program).name[:15],
}  # fmt: skip


def test_image_tag_follows_the_package_list_not_the_config() -> None:
    redis = SERVICES["redis"]
    base = "libtrace/base:0123"
    # The content key: SHA-256 of the base, the packages and the install recipe (so the
    # same in every process, unlike hash()), 16 hex digits, under the service's name.
    key = hashlib.sha256("\0".join([base, *redis.image_packages, INSTALL_SCRIPT]).encode())
    assert image_tag(redis, base) == f"libtrace/redis:{key.hexdigest()[:16]}"
    assert image_tag(redis, base) != image_tag(dataclasses.replace(redis, package="valkey"), base)
    assert image_tag(redis, base) != image_tag(redis, "libtrace/base:4567")
    reconfigured = dataclasses.replace(redis, files=lambda running: {"x.conf": "other"})
    assert image_tag(reconfigured, base) == image_tag(redis, base)
    assert image_tag(SERVICES["kafka"], base) == base  # no package: the base image itself


def test_image_is_built_once_then_cached(
    docker_backend: DockerBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = docker_backend.client
    first = service_image(client, SERVICES["redis"])
    built = client.images.get(first).id
    builds: list[object] = []
    monkeypatch.setattr(_images, "_build", lambda *args: builds.append(args))
    monkeypatch.setattr(_images, "base_tarball", lambda *args: builds.append(args))
    again = service_image(client, SERVICES["redis"])
    assert again == first and first.startswith("libtrace/redis:")
    # Cached: neither the image nor the base rootfs was built again; the same image.
    assert builds == []
    assert client.images.get(again).id == built


@pytest.mark.parametrize("name", [pytest.param(n, marks=needs_clients(n)) for n in SERVICES])
def test_container_passes_testinfra_takes_traffic_and_is_removed(
    name: str, docker_backend: DockerBackend
) -> None:
    service = SERVICES[name]
    host_ip, port = endpoint(service)
    with start(name, docker_backend, host=host_ip, port=port) as running:
        container = running.container
        assert container is not None
        assert container.name.startswith(f"libtrace-{name}-")
        assert container.image == docker_backend.image(service)
        assert container.pid in running.pids()
        inside = testinfra.get_host(f"docker://{container.name}")
        assert inside.process.filter(comm=SERVER_COMM[name]), inside.run("ps -e").stdout
        protocol = "udp" if name == "dns" else "tcp"
        assert inside.socket(f"{protocol}://{host_ip}:{port}").is_listening
        if service.package:
            package = inside.package(service.package)
            assert package.is_installed and package.version[:1].isdigit()
        before = running.server_stats()
        running.traffic()
        assert_counted(running, before, EXPECTED_COUNTS[name])
    assert not containers_named(docker_backend, container.name)


def test_container_is_removed_when_the_body_raises(docker_backend: DockerBackend) -> None:
    names = []
    with (
        pytest.raises(RuntimeError, match="test body failed"),
        start("redis", docker_backend, port=free_port()) as running,
    ):
        assert running.container is not None
        names.append(running.container.name)
        raise RuntimeError("test body failed")
    assert names and not containers_named(docker_backend, names[0])


def test_image_build_failure_is_a_one_line_error_and_leaves_no_container(
    docker_backend: DockerBackend,
) -> None:
    bogus = dataclasses.replace(SERVICES["redis"], name="bogus", package="libtrace-no-such-package")
    with pytest.raises(ServiceError) as caught, start(bogus, docker_backend):
        pytest.fail("no image can be built")
    message = str(caught.value)
    assert "\n" not in message and "failed to build" in message
    assert "Unable to locate package libtrace-no-such-package" in message  # apt's own words
    assert not containers_named(docker_backend, "libtrace-build-bogus-")
    assert not containers_named(docker_backend, "libtrace-bogus-")


def test_bad_config_in_a_container_is_an_error_with_its_log_and_no_container(
    docker_backend: DockerBackend,
) -> None:
    broken = dataclasses.replace(
        SERVICES["mqtt"],
        files=lambda running: {"mosquitto.conf": f"listener {running.port}\nno_such_option 1\n"},
    )
    expected = r"exited before it was ready.*no_such_option"
    with (
        pytest.raises(ServiceError, match=expected),
        start(broken, docker_backend, port=free_port()),
    ):
        pytest.fail("a broken config must not start")
    assert not containers_named(docker_backend, "libtrace-mqtt-")


def test_unreachable_daemon_socket_is_a_clear_error_simulating_an_absent_dockerd() -> None:
    """Simulated: the SDK points at a socket path where no daemon listens (none is started)."""
    backend = DockerBackend(url="unix:///nonexistent/libtrace/docker.sock")
    expected = r"^no Docker daemon answers at unix:///nonexistent"
    with pytest.raises(ServiceError, match=expected), start("redis", backend):
        pytest.fail("there is no daemon")

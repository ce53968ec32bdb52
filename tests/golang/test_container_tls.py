"""A Go HTTPS server inside a Docker container: its TLS plaintext becomes records
that name the container.

The container runs libtrace's own base image (libtrace.services builds it
locally: there is no registry here) with the test server's binary mounted
read-only, on the host network.  The tracer finds the program through
/proc like any other (``/proc/PID/exe`` resolves inside the container's mount
namespace), and the records carry the container's id, name and image.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess

import pytest

from libtrace import Tracer
from libtrace.records import ContainerResolver, RecordPipeline
from libtrace.services._dockerd import docker_client
from libtrace.services._images import LABELS, base_image
from tests.golang.conftest import go_binary, go_versions
from tests.tracing import drain
from tests.waiting import wait_for

pytestmark = [pytest.mark.root, pytest.mark.bpf, pytest.mark.docker, pytest.mark.go_toolchain]

PORT = 28443


@pytest.fixture()
def container():
    # As tests/services' docker_backend: skipped only where no engine can be had (the
    # root marker covers the privilege); a daemon or an image that fails is a failure.
    if shutil.which("dockerd") is None or shutil.which("debootstrap") is None:
        pytest.skip("needs docker.io and debootstrap (scripts/install-deps.sh)")
    client = docker_client()  # starts dockerd when none runs
    image = base_image(client)
    binary = go_binary("https_server", go_versions()[-1], stripped=True)
    name = f"libtrace-gotls-{secrets.token_hex(4)}"
    box = client.containers.run(
        image,
        ["/srv/https_server", "-addr", f"127.0.0.1:{PORT}"],
        name=name,
        network_mode="host",
        volumes={str(binary): {"bind": "/srv/https_server", "mode": "ro"}},
        labels=LABELS,
        detach=True,
    )
    try:
        wait_for(lambda: "listening on" in box.logs().decode(), "the server listening", 20)
        box.reload()
        yield box
    finally:
        box.remove(force=True)


def test_go_tls_records_from_a_container_carry_its_id_name_and_image(container):
    pid = int(container.attrs["State"]["Pid"])
    pipeline = RecordPipeline(containers=ContainerResolver())
    with Tracer(ports=(PORT,), go_attach_delay=0.5) as tracer:
        assert pid in tracer.go_tls.attached  # running before the tracer: attached at once
        for flags in (["--http1.1"], ["--http2"]):
            subprocess.run(["curl", "-sk", *flags, f"https://127.0.0.1:{PORT}/in-a-box"],
                           check=True, capture_output=True, timeout=20)
        records = []

        def both_served() -> bool:
            records.extend(r for e in tracer.poll(100) for r in pipeline.feed(e))
            return {r.protocol for r in records if r.pid == pid} >= {"http1", "http2"}

        wait_for(both_served, "the server's HTTP/1.1 and HTTP/2 records", 20)
        records.extend(r for e in drain(tracer) for r in pipeline.feed(e))  # any more
        records.extend(pipeline.flush())
    server_side = [r.to_json() for r in records if r.pid == pid]
    assert sorted((r["protocol"], r["request"]["path"]) for r in server_side) == [
        ("http1", "/in-a-box"), ("http2", "/in-a-box"),
    ]
    for record in server_side:
        assert record["tls"] is True
        assert record["container"]["id"] == container.id
        assert record["container"]["name"] == container.name
        assert re.match(r"libtrace/base", record["container"]["image"])
    # curl runs on the host, outside any container.
    assert all(r.container is None for r in records if r.pid != pid)

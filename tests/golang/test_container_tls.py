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
import subprocess
import time

import pytest

from libtrace import Tracer
from libtrace.records import ContainerResolver, RecordPipeline
from libtrace.services import ServiceError
from libtrace.services._dockerd import docker_client
from libtrace.services._images import LABELS, base_image
from tests.golang.conftest import go_binary, go_versions

pytestmark = [pytest.mark.root, pytest.mark.bpf, pytest.mark.docker, pytest.mark.go_toolchain]

PORT = 28443


@pytest.fixture()
def container():
    try:
        client = docker_client()
        image = base_image(client)
    except ServiceError as exc:
        pytest.skip(f"no Docker here: {exc}")
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
        deadline = time.monotonic() + 20
        while "listening on" not in box.logs().decode() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "listening on" in box.logs().decode(), box.logs().decode()
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
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            for event in tracer.poll(100):
                records.extend(pipeline.feed(event))
        records.extend(pipeline.flush())
    server_side = [r for r in records if r["pid"] == pid]
    assert sorted((r["protocol"], r["request"]["path"]) for r in server_side) == [
        ("http1", "/in-a-box"), ("http2", "/in-a-box"),
    ]
    for record in server_side:
        assert record["tls"] is True
        assert record["container"]["id"] == container.id
        assert record["container"]["name"] == container.name
        assert re.match(r"libtrace/base", record["container"]["image"])
    # curl runs on the host, outside any container.
    assert all(r["container"] is None for r in records if r["pid"] != pid)

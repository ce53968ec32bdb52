"""The load run: pipelined redis-benchmark, every command the server counted is a traced record."""

from __future__ import annotations

import shutil

import pytest

from libtrace.check import run_load

from .conftest import needs_docker

pytestmark = [
    pytest.mark.root,
    pytest.mark.bpf,
    pytest.mark.skipif(
        not all(shutil.which(p) for p in ("redis-server", "redis-benchmark", "redis-cli")),
        reason="needs redis-server, redis-benchmark and redis-cli",
    ),
]


def assert_accounted(backend: str) -> None:
    result = run_load(backend)

    assert result.requests == 100_000
    # redis-benchmark's own CONFIG GETs come on top of the requests.
    assert result.server_commands >= result.requests
    assert result.accounted, result.to_json()
    assert result.lost == 0 and result.records == result.server_commands, result.to_json()


def test_pipelined_load_gives_one_record_per_command_the_server_counted() -> None:
    assert_accounted("process")


@pytest.mark.docker
@needs_docker()
def test_pipelined_load_against_a_container_is_accounted_too() -> None:
    assert_accounted("docker")

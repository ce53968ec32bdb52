"""A check that cannot run: exit 2, one line, and nothing left (server, container, tcpdump, BPF)."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from libtrace.check import run_check
from libtrace.errors import ConfigError
from libtrace.services import ServiceError

from ..waiting import wait_for
from .conftest import (
    bpf_programs_alive,
    bpf_programs_held,
    containers_mentioning,
    needs,
    needs_docker,
    processes_mentioning,
    run_cli,
)


@pytest.fixture
def squatted_port() -> Iterator[int]:
    """A loopback port held by a listener that never answers: a server there cannot bind."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        yield int(squatter.getsockname()[1])


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("libtrace: error: ") and "Traceback" not in stderr
    return lines[0]


def test_unknown_scenario_exits_2_with_one_line() -> None:
    done = run_cli("nosuch")

    assert done.returncode == 2
    assert "invalid choice: 'nosuch'" in done.stderr and "Traceback" not in done.stderr
    with pytest.raises(ConfigError, match="unknown scenario 'nosuch'"):
        run_check("nosuch")


def test_a_port_with_all_scenarios_is_bad_input() -> None:
    done = run_cli("all", "--port", "1234")

    assert done.returncode == 2
    assert "single scenario" in one_error_line(done.stderr)


@pytest.mark.root
@needs("redis")
def test_a_check_on_a_taken_port_exits_2_and_leaves_nothing(squatted_port: int) -> None:
    done = run_cli("redis", "--port", str(squatted_port))

    line = one_error_line(done.stderr)
    assert done.returncode == 2
    assert f"127.0.0.1:{squatted_port}/tcp is already in use by pid {os.getpid()}" in line
    assert processes_mentioning(str(squatted_port)) == []  # no server, no tcpdump


@pytest.mark.root
@pytest.mark.docker
@needs_docker()
def test_a_docker_check_on_a_taken_port_exits_2_and_starts_no_container(squatted_port: int) -> None:
    done = run_cli("redis", "--backend", "docker", "--port", str(squatted_port))

    line = one_error_line(done.stderr)
    assert done.returncode == 2 and f"127.0.0.1:{squatted_port}/tcp is already in use" in line
    assert containers_mentioning(str(squatted_port)) == []
    assert processes_mentioning(str(squatted_port)) == []


def test_an_absent_docker_daemon_exits_2_with_one_line(tmp_path: Path) -> None:
    done = run_cli("redis", "--backend", "docker",
                   env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"})  # fmt: skip

    assert done.returncode == 2
    assert "no Docker daemon answers" in one_error_line(done.stderr)


@pytest.mark.root
@pytest.mark.bpf
@needs("redis")
def test_a_server_dying_mid_traffic_leaves_no_program_tcpdump_or_server(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    pcap = tmp_path / "cut.pcap"
    attached: dict[str, set[int]] = {}

    def kill_the_server(step: str) -> None:
        if step.startswith("running"):  # tracer and tcpdump are live now
            attached["programs"] = bpf_programs_held(os.getpid())
            attached["tcpdump"] = set(processes_mentioning(str(pcap)))
            for pid in processes_mentioning(f"redis-server 127.0.0.1:{port}"):
                os.kill(pid, signal.SIGKILL)

    with pytest.raises(ServiceError, match="redis traffic exited"):
        run_check("redis", port=port, keep_pcap=pcap, progress=kill_the_server)

    assert attached["programs"] and attached["tcpdump"], "the failure came after both started"
    assert bpf_programs_held(os.getpid()) == set()
    assert bpf_programs_alive(attached["programs"]) == set()
    assert processes_mentioning(str(pcap)) == []
    assert processes_mentioning(str(port)) == []


@pytest.mark.root
@needs("redis")
def test_a_check_never_sends_traffic_to_a_server_it_did_not_start(tmp_path: Path) -> None:
    """A user's own redis on the port: exit 2, and not one of its keys is touched."""
    import subprocess

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    users = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    cli = ["redis-cli", "-p", str(port)]
    try:
        wait_for(
            lambda: subprocess.run([*cli, "ping"], capture_output=True, text=True).stdout.strip()
            == "PONG",
            "the user's redis-server answering PING",
        )
        subprocess.run([*cli, "set", "users:key", "precious"], check=True, capture_output=True)
        before = subprocess.run([*cli, "info", "commandstats"], capture_output=True, text=True)

        done = run_cli("redis", "--port", str(port))

        line = one_error_line(done.stderr)
        assert done.returncode == 2
        assert f"127.0.0.1:{port}/tcp is already in use by pid {users.pid} (redis-server)" in line
        after = subprocess.run([*cli, "info", "commandstats"], capture_output=True, text=True)
        # Nothing but our own INFO reached the user's server.
        assert _without_info(after.stdout) == _without_info(before.stdout)
        got = subprocess.run([*cli, "get", "users:key"], capture_output=True, text=True)
        assert got.stdout.strip() == "precious"
    finally:
        users.terminate()
        users.wait()


def _without_info(commandstats: str) -> list[str]:
    return [line for line in commandstats.splitlines() if line.startswith("cmdstat_")
            and not line.startswith("cmdstat_info:")]  # fmt: skip


def test_a_listener_not_held_by_the_launched_processes_is_refused() -> None:
    """The check after readiness: every listener on the port must be the server's."""
    from libtrace.services._ports import check_listeners_are_ours

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = int(other.getsockname()[1])
        check_listeners_are_ours("redis", "127.0.0.1", port, [os.getpid()])  # ours: fine
        with pytest.raises(ServiceError, match=f"not the one libtrace started .*pid {os.getpid()}"):
            check_listeners_are_ours("redis", "127.0.0.1", port, [1])

"""A server that cannot start is one ServiceError line with its log's tail, and leaves nothing."""

from __future__ import annotations

import dataclasses
import os
import socket

import pytest

from libtrace.errors import LibtraceError
from libtrace.services import SERVICES, ServiceError, start
from libtrace.services._errors import log_tail
from libtrace.services._probes import tcp_accepts

from .conftest import free_port, needs_programs, processes_mentioning

pytestmark = pytest.mark.root


def test_service_error_is_a_libtrace_error() -> None:
    assert issubclass(ServiceError, LibtraceError)


def test_log_tail_is_one_bounded_line() -> None:
    assert log_tail("a\n\nb\nc\nd\n") == "b | c | d"
    assert log_tail("") == "(empty log)"
    tail = log_tail("x" * 5000)
    assert len(tail) <= 401 and "\n" not in tail


@needs_programs("mqtt")
def test_bad_config_is_a_one_line_error_with_the_log_tail_and_nothing_left() -> None:
    port = free_port()
    broken = dataclasses.replace(
        SERVICES["mqtt"],
        files=lambda running: {"mosquitto.conf": f"listener {running.port}\nno_such_option 1\n"},
    )
    with pytest.raises(ServiceError) as caught, start(broken, port=port):
        pytest.fail("a broken config must not start")
    message = str(caught.value)
    assert "\n" not in message
    assert "exited before it was ready" in message
    assert "no_such_option" in message.split("log:", 1)[1]  # mosquitto's own complaint
    assert not processes_mentioning("libtrace-mqtt-")


@needs_programs("redis")
def test_port_in_use_is_an_error_naming_its_holder() -> None:
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        port = squatter.getsockname()[1]
        # Claimed before the server starts: the holder is named, no server is launched.
        holder = rf"is already in use by pid {os.getpid()} \(\S+\)"
        with pytest.raises(ServiceError, match=holder), start("redis", port=port):
            pytest.fail("the port is taken")
    assert not processes_mentioning(f"--port {port} ")


def test_server_that_never_answers_times_out_and_is_killed() -> None:
    silent = dataclasses.replace(
        SERVICES["dubbo"],
        name="silent",
        program="sleep",
        command=lambda running: ["sh", "-c", f"sleep 3600; : {running.workdir}"],
        ready=tcp_accepts,
        start_timeout=1.0,
    )
    with (
        pytest.raises(ServiceError, match=r"did not answer on .* within 1 s"),
        start(silent, port=free_port()),
    ):
        pytest.fail("nothing listens")
    assert not processes_mentioning("libtrace-silent-")


def test_missing_program_names_its_package() -> None:
    absent = dataclasses.replace(SERVICES["redis"], program="no-such-redis-server")
    expected = r"not installed \(Debian package redis-server\)"
    with pytest.raises(ServiceError, match=expected), start(absent):
        pass


def test_unknown_backend_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown backend"), start("redis", "vm"):
        pass

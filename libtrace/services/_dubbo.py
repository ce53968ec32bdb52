"""Dubbo: a hessian2 client against a FAKE Dubbo server (see ``_fake_dubbo_server``).

The server runs ``libtrace.services._fake_dubbo_server`` with this
interpreter; for the Docker backend the interpreter and libtrace are
bind-mounted read-only into the plain base image.
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import _fake_dubbo_server as fake
from ._clients import count_matches, raw_exchange
from ._description import Service
from ._probes import tcp_accepts
from ._running import Running

GREETING = "org.demo.GreetingService"


def _package_root() -> Path:
    return Path(__file__).resolve().parents[2]


def _command(running: Running) -> list[str]:
    # Put this libtrace first on the path: the server must run the same code as the
    # client, whether or not (or wherever) libtrace is installed.
    script = (
        f"import sys; sys.path.insert(0, {str(_package_root())!r}); "
        "from libtrace.services._fake_dubbo_server import main; main(sys.argv[1:])"
    )
    return [sys.executable, "-c", script, running.host, str(running.port)]


def _host_paths() -> tuple[Path, ...]:
    """The interpreter, its environment (a venv and its base), and the libtrace package."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), _package_root()}
    return tuple(sorted(paths))


def _traffic(running: Running) -> None:
    """OK, SERVICE_NOT_FOUND, an exception, one-way, a heartbeat, then two pipelined calls."""
    frames = (
        fake.request(1, GREETING, "sayHello"),
        fake.request(2, "missing.Service", "sayHello"),
        fake.request(3, GREETING, "fail"),
        fake.request(4, GREETING, "notify", two_way=False),
        fake.heartbeat(5),
        fake.request(6, GREETING, "sayHello") + fake.request(7, GREETING, "sayHello"),
    )
    replies = raw_exchange(running.host, running.port, b"".join(frames))
    if replies.count(fake.MAGIC) != 6:  # six two-way requests and events
        raise AssertionError(f"the fake Dubbo server sent {replies.count(fake.MAGIC)} replies")


def request_counts(running: Running) -> dict[str, int]:
    """Requests the fake server logged, by ``service.method``."""
    return count_matches(r"^request \d+ (\S+)$", running.log())


DUBBO = Service(
    name="dubbo",
    fixture="fake-dubbo.pcap",
    protocol="dubbo",
    package=None,
    program=sys.executable,
    port=22880,
    command=_command,
    ready=tcp_accepts,
    traffic=_traffic,
    stats=request_counts,
    host_paths=_host_paths,
)

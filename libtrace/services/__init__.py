"""Real protocol servers and their client traffic, as local processes or Docker containers.

One :class:`Service` per protocol (``SERVICES``: http1, http2, redis, dns, mysql,
mqtt, kafka, dubbo) says how to run a real server (nginx, nghttpd, redis-server,
dnsmasq, mariadbd, mosquitto, tansu, and a FAKE Dubbo server), how to tell it is
ready (a probe in its own protocol), what deterministic client traffic to drive
against it, and what the server itself counted.  :func:`start` runs one on a
backend and always cleans up::

    from libtrace.services import SERVICES, start

    with start("redis", backend="docker") as running:   # or backend="process"
        running.host, running.port      # where it listens (host network for Docker)
        running.container               # None for a process; else .id .name .image .pid
        running.pids()                  # the server's host pids, for the tracer's pid filter
        running.traffic()               # = SERVICES["redis"].traffic(running)
        running.server_stats()          # e.g. Redis INFO commandstats: {"set": 2, ...}
        running.log()                   # the server's output so far

``start(name, backend, host=..., port=...)`` overrides the description's
loopback address and port.  Backends: ``"process"`` (a child process in its
own session: SIGTERM, then SIGKILL) and ``"docker"`` (a container with
``--network host`` from an image built locally and cached by content; see
``_docker``).  Every failure to start a server, build an image or reach the
Docker daemon is a one-line :class:`ServiceError` ending with the log's tail
(:func:`failure` makes one), and leaves no process or container behind.
"""

from __future__ import annotations

from ._description import Service
from ._dns import GLIBC_DNS_PORT
from ._errors import ServiceError, failure
from ._registry import SERVICES
from ._running import ContainerInfo, Running
from ._start import Backend, make_backend, start

__all__ = [
    "GLIBC_DNS_PORT",
    "SERVICES",
    "Backend",
    "ContainerInfo",
    "Running",
    "Service",
    "ServiceError",
    "failure",
    "make_backend",
    "start",
]

"""DNS: dnsmasq, queried by dig over UDP and TCP and by glibc's resolver (``sendmmsg``).

glibc reads its name servers from ``/etc/resolv.conf`` and always uses port
53, so the service listens on port 53 of its own loopback address
(``127.0.53.1``; all of 127/8 is local on Linux) and the glibc client runs in
a private mount namespace where a bind-mounted ``resolv.conf`` names that
address.  ``getent ahosts`` asks for A and AAAA at once, which glibc sends
with one ``sendmmsg``.  With another port the glibc step is left out.
"""

from __future__ import annotations

import contextlib

from ._clients import count_matches, run_client
from ._description import Service
from ._probes import PROBE_TIMEOUT_S
from ._running import Running

#: The port glibc's resolver uses; the glibc step needs the service there.
GLIBC_DNS_PORT = 53
ZONE_A, ZONE_AAAA = "10.1.2.3", "fd00::1"


def _command(running: Running) -> list[str]:
    return [
        "dnsmasq", "-k", "--no-resolv", "--no-hosts", "--bind-interfaces",
        f"--listen-address={running.host}", f"--port={running.port}", "--user=root",
        f"--pid-file={running.workdir}/dnsmasq.pid", f"--address=/example.test/{ZONE_A}",
        f"--address=/example.test/{ZONE_AAAA}", "--local=/test/", "--log-queries",
        "--log-facility=-",
    ]  # fmt: skip


def _ready(running: Running) -> bool:
    import dns.exception
    import dns.message
    import dns.query

    query = dns.message.make_query("ready.example.test", "A")
    with contextlib.suppress(dns.exception.DNSException, OSError):
        dns.query.udp(query, running.host, port=running.port, timeout=PROBE_TIMEOUT_S)
        return True
    return False


def glibc_lookup(running: Running, name: str) -> bytes:
    """Resolve ``name`` with glibc's ``getaddrinfo`` (``getent ahosts``) against the service."""
    resolv = running.workdir / "resolv.conf"
    resolv.write_text(f"nameserver {running.host}\noptions attempts:1 timeout:2\n")
    script = f'mount --bind "{resolv}" /etc/resolv.conf && exec getent ahosts "{name}"'
    return run_client("unshare", "--mount", "--propagation", "private", "sh", "-c", script)


def _traffic(running: Running) -> None:
    """A, AAAA and NXDOMAIN over UDP, A over TCP, then glibc's A+AAAA pair."""
    dig = ["dig", f"@{running.host}", "-p", str(running.port), "+tries=1", "+time=2"]
    run_client(*dig, "example.test", "A")
    run_client(*dig, "example.test", "AAAA")
    run_client(*dig, "nope.test", "A")
    run_client(*dig, "+tcp", "www.example.test", "A")
    if running.port == GLIBC_DNS_PORT:
        answer = glibc_lookup(running, "glibc.example.test").decode()
        if ZONE_A not in answer:
            raise AssertionError(f"getaddrinfo did not resolve through dnsmasq: {answer!r}")


def query_counts(running: Running) -> dict[str, int]:
    """Queries dnsmasq logged, by type (``A``, ``AAAA``)."""
    return count_matches(r"query\[(\w+)\] \S+ from", running.log())


DNS = Service(
    name="dns",
    protocol="dns",
    package="dnsmasq-base",
    program="dnsmasq",
    host="127.0.53.1",
    port=GLIBC_DNS_PORT,
    command=_command,
    ready=_ready,
    traffic=_traffic,
    stats=query_counts,
    clients=("dig", "getent", "unshare"),
    udp=True,
)

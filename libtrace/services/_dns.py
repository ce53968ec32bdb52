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
from ._errors import ServiceError
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


def _variants(running: Running) -> None:
    """DNS beyond one question per query: an A and an AAAA query under one id from one
    socket (as glibc sends them when its clock is coarse), two questions in one query,
    none, and a NOTIFY, each answered by dnsmasq as it answers them."""
    import socket

    import dns.message
    import dns.name
    import dns.opcode
    import dns.rdataclass
    import dns.rdatatype
    import dns.rrset

    def query(*questions: tuple[str, str], opcode: int = dns.opcode.QUERY) -> dns.message.Message:
        message = dns.message.Message(id=0x5EED)
        message.set_opcode(dns.opcode.Opcode.make(opcode))
        for name, kind in questions:
            message.question.append(
                dns.rrset.RRset(
                    dns.name.from_text(name), dns.rdataclass.IN, dns.rdatatype.from_text(kind)
                )
            )
        return message

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0)
        sock.connect((running.host, running.port))
        for message in (query(("example.test", "A")), query(("example.test", "AAAA"))):
            sock.send(message.to_wire())  # both sent before either answer is read
        for _ in range(2):
            sock.recv(4096)
        for message in (
            query(("example.test", "A"), ("example.test", "AAAA")),
            query(),
            query(("example.test", "SOA"), opcode=dns.opcode.NOTIFY),
        ):
            sock.send(message.to_wire())
            try:
                sock.recv(4096)
            except TimeoutError:
                raise ServiceError(f"dnsmasq did not answer {message.question}") from None


def query_counts(running: Running) -> dict[str, int]:
    """Queries dnsmasq logged, by type (``A``, ``AAAA``)."""
    return count_matches(r"query\[(\w+)\] \S+ from", running.log())


DNS = Service(
    name="dns",
    fixture="dnsmasq.pcap",
    protocol="dns",
    package="dnsmasq-base",
    program="dnsmasq",
    host="127.0.53.1",
    port=GLIBC_DNS_PORT,
    command=_command,
    ready=_ready,
    traffic=_traffic,
    variants=_variants,
    stats=query_counts,
    clients=("dig", "getent", "unshare"),
    udp=True,
)

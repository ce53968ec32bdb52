"""Redaction on live traffic and on its capture: real servers, real clients, the CLI.

For each protocol with a real server and client on this host, one run of
client traffic carries known secrets (a Redis password and ``masterauth``, an
HTTP bearer token, cookie and ``?token=``, a MySQL user's password in
``CREATE USER``/``ALTER USER``, an MQTT password) while two ``libtrace trace
--records --json --headers`` children trace it — one with the defaults, one
with ``--no-redact`` — and tcpdump captures it.  Then ``libtrace pcap`` reads
the capture: JSON with headers, the table, and JSON with ``--no-redact``.  No
secret may be in any default output (stdout or stderr); each must be in the
``--no-redact`` ones, which proves the traffic carried it where the parsers
look.  A run is made once per protocol and its tests read it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from libtrace.check import free_endpoint
from libtrace.parsers.redaction import REDACTED
from libtrace.services import SERVICES, Running, Service, start
from libtrace.services.tcpdump import capture

from ..waiting import wait_for
from ._live import env

pytestmark = [pytest.mark.root, pytest.mark.bpf]

CLI = [sys.executable, "-m", "libtrace.cli"]
#: A CLI child only stops here if it hangs; a slow machine waits longer, it does not fail.
CLI_TIMEOUT_S = 120.0
#: Seconds a tracer may take to attach (BPF load on a busy machine).
ATTACH_TIMEOUT_S = 60.0

REDIS_PASSWORD, REDIS_MASTERAUTH = "redis-pw-3f9a1c77", "redis-masterauth-8d2e4b19"
HTTP1_BEARER, HTTP1_COOKIE, HTTP1_QUERY = "h1-bearer-5c0de9", "h1-cookie-71b3f0", "h1-qtok-9e4a6d"
HTTP2_BEARER, HTTP2_COOKIE, HTTP2_QUERY = "h2-bearer-2a8f61", "h2-cookie-c93e07", "h2-qtok-4d17b2"
MYSQL_CREATED, MYSQL_ALTERED = "mysql-created-6b2f9d03", "mysql-altered-e05c81a7"
MQTT_PASSWORD = "mqtt-pw-a41f7c5e"
#: The MySQL user the traffic creates, logs in as and drops.
MYSQL_USER = "redacted_user"


def _redis_with_password(service: Service) -> Service:
    """The Redis service with ``requirepass`` (its PING probe gets -NOAUTH: still ready)."""

    def command(running: Running) -> list[str]:
        return [*service.command(running), "--requirepass", REDIS_PASSWORD]

    return dataclasses.replace(service, command=command)


def _run(*argv: str) -> None:
    subprocess.run(argv, capture_output=True, timeout=CLI_TIMEOUT_S, check=True)


def _redis_traffic(running: Running) -> None:
    """redis-cli -a (an AUTH before each command), and CONFIG SET masterauth."""
    cli = ["redis-cli", "--no-auth-warning", "-a", REDIS_PASSWORD,
           "-h", running.host, "-p", str(running.port)]  # fmt: skip
    _run(*cli, "SET", "greeting", "hello")
    _run(*cli, "CONFIG", "SET", "masterauth", REDIS_MASTERAUTH)


def _http1_traffic(running: Running) -> None:
    url = f"http://{running.host}:{running.port}/index.html?page=2&token={HTTP1_QUERY}"
    _run("curl", "-sf", "-o", "/dev/null", "-H", f"Authorization: Bearer {HTTP1_BEARER}",
         "--cookie", f"session={HTTP1_COOKIE}", url)  # fmt: skip


def _http2_traffic(running: Running) -> None:
    url = f"http://{running.host}:{running.port}/index.html?page=2&token={HTTP2_QUERY}"
    _run("nghttp", "-n", "-H", f"authorization: Bearer {HTTP2_BEARER}",
         "-H", f"cookie: session={HTTP2_COOKIE}", url)  # fmt: skip


def _mysql_traffic(running: Running) -> None:
    """CREATE USER ... IDENTIFIED BY, a login with that password (the handshake
    carries only a scramble of it), ALTER USER ... IDENTIFIED BY, DROP USER."""
    import pymysql  # type: ignore[import-untyped,import-not-found,unused-ignore]

    from libtrace.services._mysql import PASSWORD, USER

    def connect(user: str, password: str) -> Any:
        return pymysql.connect(host=running.host, port=running.port, user=user,
                               password=password, autocommit=True)  # fmt: skip

    admin = connect(USER, PASSWORD)
    try:
        with admin.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{MYSQL_USER}'@'%'")
            cur.execute(f"CREATE USER '{MYSQL_USER}'@'%' IDENTIFIED BY '{MYSQL_CREATED}'")
            user = connect(MYSQL_USER, MYSQL_CREATED)
            with user.cursor() as mine:
                mine.execute("SELECT CURRENT_USER()")
            user.close()
            cur.execute(f"ALTER USER '{MYSQL_USER}'@'%' IDENTIFIED BY '{MYSQL_ALTERED}'")
            cur.execute(f"DROP USER '{MYSQL_USER}'@'%'")
    finally:
        admin.close()


def _mqtt_traffic(running: Running) -> None:
    """paho-mqtt (the MQTT service's client) with a username and password: CONNECT,
    a QoS 1 PUBLISH, DISCONNECT.  mosquitto allows anonymous clients, so it
    accepts any password."""
    import paho.mqtt.client as paho  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from paho.mqtt.enums import CallbackAPIVersion  # type: ignore[import-untyped,import-not-found,unused-ignore]

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="lt-redact")
    client.username_pw_set("lt-user", MQTT_PASSWORD)
    client.connect(running.host, running.port, keepalive=60)
    client.loop_start()
    try:
        wait_for(client.is_connected, "MQTT CONNACK")
        client.publish("libtrace/redact", "hello", qos=1).wait_for_publish(10)
        client.disconnect()
    finally:
        client.loop_stop()


@dataclass(frozen=True, slots=True)
class Case:
    """One protocol's run.

    Attributes:
        service: the service's description (a variant of one in ``SERVICES``).
        traffic: the client traffic carrying ``secrets``.
        secrets: what must be in no default output.
        kept: the parser keeps the secrets in records, so ``--no-redact`` shows
            them (an MQTT CONNECT password is never kept, redacted or not).
        programs: what the run needs on the host.
    """

    service: Service
    traffic: Callable[[Running], None]
    secrets: tuple[str, ...]
    kept: bool = True
    programs: tuple[str, ...] = ()


CASES = {
    "redis": Case(_redis_with_password(SERVICES["redis"]), _redis_traffic,
                  (REDIS_PASSWORD, REDIS_MASTERAUTH), programs=("redis-cli",)),
    "http1": Case(SERVICES["http1"], _http1_traffic, (HTTP1_BEARER, HTTP1_COOKIE, HTTP1_QUERY),
                  programs=("curl",)),
    "http2": Case(SERVICES["http2"], _http2_traffic, (HTTP2_BEARER, HTTP2_COOKIE, HTTP2_QUERY),
                  programs=("nghttp",)),
    "mysql": Case(SERVICES["mysql"], _mysql_traffic, (MYSQL_CREATED, MYSQL_ALTERED)),
    "mqtt": Case(SERVICES["mqtt"], _mqtt_traffic, (MQTT_PASSWORD,), kept=False),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Output:
    """What one CLI run printed: records (JSON runs), the stats line (trace), all text."""

    stdout: str
    stderr: str
    records: list[dict[str, Any]]
    stats: dict[str, Any] | None

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


def _json_lines(stdout: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    stats = lines.pop() if lines and lines[-1].get("type") == "stats" else None
    return lines, stats


class TraceChild:
    """``libtrace trace --records --json --headers --port PORT [EXTRA]`` in a child,
    its output in files (no pipe to fill while the traffic runs)."""

    def __init__(self, port: int, directory: Path, name: str, *extra: str) -> None:
        self.out, self.err = directory / f"{name}.out", directory / f"{name}.err"
        argv = [*CLI, "trace", "--records", "--json", "--headers", "--no-go-tls",
                "--port", str(port), *extra]  # fmt: skip
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env())

    def attached(self) -> bool:
        """True once the tracer says it is tracing (its stderr line), or it exited."""
        return "tracing" in self.err.read_text() or self.proc.poll() is not None

    def wait_attached(self) -> None:
        wait_for(self.attached, "the tracer attached", ATTACH_TIMEOUT_S)
        assert self.proc.poll() is None, self.err.read_text()

    def stop(self) -> Output:
        """SIGINT (the tracer drains its buffer and flushes the records), then its output."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(CLI_TIMEOUT_S)
        finally:
            self.kill()
        stdout, stderr = self.out.read_text(), self.err.read_text()
        assert self.proc.returncode == 0, stderr
        return Output(stdout, stderr, *_json_lines(stdout))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _pcap(path: Path, *args: str) -> Output:
    done = subprocess.run([*CLI, "pcap", str(path), *args], capture_output=True, text=True,
                          env=env(), timeout=CLI_TIMEOUT_S, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    records, _ = _json_lines(done.stdout) if "--json" in args else ([], None)
    return Output(done.stdout, done.stderr, records, None)


@dataclass(frozen=True, slots=True)
class Run:
    """One protocol's traffic as every output shows it."""

    protocol: str
    case: Case
    wire: bytes  #: the capture itself (raw payloads: mode 0600, never a record)
    trace: Output
    trace_no_redact: Output
    pcap_json: Output
    pcap_table: Output
    pcap_no_redact: Output

    def redacted_outputs(self) -> dict[str, Output]:
        return {"trace --json": self.trace, "pcap --json": self.pcap_json,
                "pcap (table)": self.pcap_table}  # fmt: skip


def _missing(case: Case) -> list[str]:
    programs = ("tcpdump", case.service.program, *case.service.clients, *case.programs)
    return [p for p in programs if shutil.which(p) is None]


@contextlib.contextmanager
def _tracers(port: int, directory: Path) -> Iterator[tuple[TraceChild, TraceChild]]:
    """The default and the ``--no-redact`` tracer, attached; killed if the run fails."""
    children: list[TraceChild] = []
    try:
        for name, extra in (("redact", ()), ("no-redact", ("--no-redact",))):
            children.append(TraceChild(port, directory, name, *extra))
        for child in children:
            child.wait_attached()
        yield children[0], children[1]
    finally:
        for child in children:
            child.kill()


def _traffic_run(protocol: str, directory: Path) -> Run:
    case = CASES[protocol]
    host, port = free_endpoint(case.service)
    wire = directory / f"{protocol}.pcap"
    with (
        start(case.service, host=host, port=port) as running,
        capture(wire, f"host {host} and port {port}") as tcpdump,
        _tracers(port, directory) as (redacting, keeping),
    ):
        case.traffic(running)
        tcpdump.mark()  # every packet of the traffic is in the file
        trace, trace_no_redact = redacting.stop(), keeping.stop()
    return Run(
        protocol, case, wire.read_bytes(), trace, trace_no_redact,
        pcap_json=_pcap(wire, "--json", "--headers"),
        pcap_table=_pcap(wire),
        pcap_no_redact=_pcap(wire, "--json", "--headers", "--no-redact"),
    )  # fmt: skip


@pytest.fixture(scope="module", params=list(CASES))
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Run:
    protocol: str = request.param
    missing = _missing(CASES[protocol])
    if missing:
        pytest.skip(f"needs {' '.join(missing)}")
    return _traffic_run(protocol, tmp_path_factory.mktemp(f"redact-{protocol}"))


def _of(records: list[dict[str, Any]], protocol: str) -> list[dict[str, Any]]:
    return [r for r in records if r["protocol"] == protocol]


def test_the_traffic_makes_records_on_each_side_and_in_the_capture(run: Run) -> None:
    """A test that passed on no records would prove nothing."""
    for output in (run.trace, run.trace_no_redact):
        sides = {r["side"] for r in _of(output.records, run.protocol)}
        assert sides == {"client", "server"}, output.text
        assert output.stats is not None and output.stats["lost"] == 0
    assert _of(run.pcap_json.records, run.protocol), run.pcap_json.text
    assert _of(run.pcap_no_redact.records, run.protocol), run.pcap_no_redact.text
    assert f"{run.protocol} " in run.pcap_table.stdout  # its rows, not only the summary


def test_no_secret_is_in_any_output(run: Run) -> None:
    for name, output in run.redacted_outputs().items():
        leaked = [secret for secret in run.case.secrets if secret in output.text]
        assert not leaked, f"{name} shows {leaked}"


def test_the_stats_line_counts_the_redactions(run: Run) -> None:
    """At least one replacement per secret on each traced side; none with --no-redact."""
    assert run.trace.stats is not None and run.trace_no_redact.stats is not None
    assert run.trace_no_redact.stats["redactions"] == 0
    if not run.case.kept:  # nothing was kept, so nothing was replaced
        assert run.trace.stats["redactions"] == 0
        return
    assert run.trace.stats["redactions"] >= 2 * len(run.case.secrets), run.trace.stats
    assert REDACTED in run.trace.stdout and REDACTED in run.pcap_json.stdout
    assert " redacted" in run.pcap_json.stderr  # the pcap summary line counts them too


def test_no_redact_shows_each_secret(run: Run) -> None:
    for name, output in (("trace --no-redact", run.trace_no_redact),
                         ("pcap --no-redact", run.pcap_no_redact)):  # fmt: skip
        shown = [secret for secret in run.case.secrets if secret in output.stdout]
        if run.case.kept:
            assert shown == list(run.case.secrets), f"{name} lacks some: {output.stdout}"
        else:
            # MQTT: the parser never keeps a CONNECT password, so even --no-redact has none
            # (though the client did send it: it is in the capture's bytes).
            assert shown == [], f"{name} shows {shown}"
            assert all(secret.encode() in run.wire for secret in run.case.secrets)

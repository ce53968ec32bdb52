"""Record the golden pcaps in ``fixtures/<protocol>/`` from real servers on loopback.

``python -m libtrace.pcap.record [PROTOCOL ...] [--out fixtures]`` starts each
server on a high loopback port (nginx, nghttpd, redis-server, dnsmasq),
captures with ``tcpdump -i lo``, drives real clients (curl, nghttp,
redis-cli, dig, plus raw sockets for pipelining), and writes
``<name>.pcap`` and, beside it, ``<name>.expected.jsonl``: the records
``libtrace pcap --json`` prints for it (review them when they change).
Needs root for tcpdump and the Debian packages named in each scenario.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ._session import analyze

#: Loopback ports the scenarios use (above the usual service ranges).
PORTS = {"http1": 18080, "http2": 18443, "redis": 16379, "dns": 15353}
#: Seconds to wait for a server or tcpdump to get ready.
READY_TIMEOUT = 10.0


def _wait_port(port: int, udp: bool = False) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if udp:
            time.sleep(0.5)
            return
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


@contextlib.contextmanager
def _process(argv: list[str], **kwargs: object) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            **kwargs)  # type: ignore[call-overload]
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _capture(path: Path, port: int) -> Iterator[None]:
    proc = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "-s", "0", "-w", str(path),
                             f"port {port}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    assert proc.stderr is not None
    proc.stderr.readline()  # "listening on lo ..." once the capture runs
    time.sleep(0.5)
    try:
        yield
    finally:
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)


def _run(*argv: str) -> None:
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
                   check=False)


def _raw(port: int, payload: bytes, wait: float = 0.5) -> None:
    with socket.create_connection(("127.0.0.1", port), 5) as sock:
        sock.sendall(payload)
        time.sleep(wait)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        sock.settimeout(2)
        with contextlib.suppress(OSError):
            while sock.recv(65536):
                pass


def _docroot(tmp: Path) -> Path:
    root = tmp / "www"
    root.mkdir()
    (root / "index.html").write_text("<html>hello</html>\n")
    (root / "big.txt").write_text("libtrace " * 20000)
    return root


def http1(tmp: Path, out: Path) -> None:
    """nginx: GET, HEAD, 404, 405, gzip (chunked), a pipelined pair, keep-alive."""
    port, root = PORTS["http1"], _docroot(tmp)
    conf = tmp / "nginx.conf"
    conf.write_text(f"""daemon off; worker_processes 1; pid {tmp}/nginx.pid;
error_log {tmp}/error.log; events {{ worker_connections 64; }}
http {{ access_log off; client_body_temp_path {tmp}; proxy_temp_path {tmp};
  fastcgi_temp_path {tmp}; uwsgi_temp_path {tmp}; scgi_temp_path {tmp};
  gzip on; gzip_min_length 1; gzip_types text/plain;
  server {{ listen 127.0.0.1:{port}; root {root}; }} }}
""")
    with _process(["nginx", "-c", str(conf), "-p", str(tmp)]):
        _wait_port(port)
        with _capture(out / "nginx.pcap", port):
            base = f"http://127.0.0.1:{port}"
            _run("curl", "-s", "-o", "/dev/null", f"{base}/index.html", f"{base}/missing")
            _run("curl", "-s", "-I", f"{base}/index.html")
            _run("curl", "-s", "-o", "/dev/null", "-X", "POST", "-d", "a=1", f"{base}/index.html")
            _run("curl", "-s", "-o", "/dev/null", "-H", "Accept-Encoding: gzip", f"{base}/big.txt")
            _raw(port, b"GET /index.html HTTP/1.1\r\nHost: pipelined\r\n\r\n"
                       b"GET /nope HTTP/1.1\r\nHost: pipelined\r\nConnection: close\r\n\r\n")


def http2(tmp: Path, out: Path) -> None:
    """nghttpd (h2c, prior knowledge): several streams on one connection, a 404, curl."""
    port, root = PORTS["http2"], _docroot(tmp)
    with _process(["nghttpd", "--no-tls", "-d", str(root), str(port)]):
        _wait_port(port)
        with _capture(out / "nghttpd.pcap", port):
            base = f"http://127.0.0.1:{port}"
            _run("nghttp", "-n", f"{base}/index.html", f"{base}/missing", f"{base}/big.txt")
            _run("curl", "-s", "-o", "/dev/null", "--http2-prior-knowledge", f"{base}/index.html")


def redis(tmp: Path, out: Path) -> None:
    """redis-server: RESP2 commands and errors, RESP3 (HELLO 3) maps, pipelined and inline."""
    port = PORTS["redis"]
    with _process(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(tmp)]):
        _wait_port(port)
        with _capture(out / "redis.pcap", port):
            cli = ["redis-cli", "-p", str(port)]
            _run(*cli, "SET", "greeting", "hello")
            _run(*cli, "GET", "greeting")
            _run(*cli, "GET", "missing")
            _run(*cli, "INCR", "greeting")
            _run(*cli, "HSET", "h", "a", "1", "b", "2")
            _run(*cli, "-3", "HGETALL", "h")
            _run(*cli, "LRANGE", "nolist", "0", "-1")
            _raw(port, b"PING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
                       b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$7\r\nNOSUCH1\r\n")


def dns(tmp: Path, out: Path) -> None:
    """dnsmasq: A, AAAA, NXDOMAIN over UDP, and a query over TCP."""
    port = PORTS["dns"]
    with _process(["dnsmasq", "-k", "--no-resolv", "--no-hosts", "--bind-interfaces",
                   "--listen-address=127.0.0.1", f"--port={port}", "--user=root",
                   f"--pid-file={tmp}/dnsmasq.pid", "--address=/example.test/10.1.2.3",
                   "--address=/example.test/fd00::1", "--local=/test/"]):
        _wait_port(port, udp=True)
        with _capture(out / "dnsmasq.pcap", port):
            dig = ["dig", "@127.0.0.1", "-p", str(port), "+tries=1", "+time=2"]
            _run(*dig, "example.test", "A")
            _run(*dig, "example.test", "AAAA")
            _run(*dig, "nope.test", "A")
            _run(*dig, "+tcp", "www.example.test", "A")


#: Scenario name -> (recorder, programs it needs).
SCENARIOS: dict[str, tuple[Callable[[Path, Path], None], tuple[str, ...]]] = {
    "http1": (http1, ("nginx", "curl")),
    "http2": (http2, ("nghttpd", "nghttp", "curl")),
    "redis": (redis, ("redis-server", "redis-cli")),
    "dns": (dns, ("dnsmasq", "dig")),
}


def write_expected(pcap: Path) -> Path:
    """Write ``<name>.expected.jsonl`` beside ``pcap`` from ``libtrace pcap --json``."""
    target = pcap.with_suffix(".expected.jsonl")
    with target.open("w") as out:
        for record in analyze(str(pcap)):
            out.write(json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m libtrace.pcap.record",
                                     description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("protocols", nargs="*", choices=[*SCENARIOS, []], metavar="PROTOCOL",
                        help=f"which to record (default all: {', '.join(SCENARIOS)})")
    parser.add_argument("--out", default="fixtures", help="the fixtures directory")
    parser.add_argument("--expected-only", action="store_true",
                        help="only regenerate the expected records of existing pcaps")
    args = parser.parse_args(argv)
    for name in args.protocols or list(SCENARIOS):
        recorder, programs = SCENARIOS[name]
        out = Path(args.out) / name
        out.mkdir(parents=True, exist_ok=True)
        if not args.expected_only:
            missing = [p for p in ("tcpdump", *programs) if shutil.which(p) is None]
            if missing:
                print(f"{name}: skipped, missing {' '.join(missing)}", file=sys.stderr)
                continue
            with tempfile.TemporaryDirectory() as tmp:
                recorder(Path(tmp), out)
        for pcap in sorted(out.glob("*.pcap")):
            print(f"{name}: {pcap} -> {write_expected(pcap)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

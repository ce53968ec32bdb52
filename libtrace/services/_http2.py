"""HTTP/2: nghttpd in cleartext (h2c, prior knowledge), driven by nghttp, curl and h2load.

nghttpd counts nothing itself; in verbose mode it logs every frame, so
server_stats() counts the HEADERS frames it received.  ``stdbuf -oL`` makes
that log line-buffered, so it is current while the server runs.
"""

from __future__ import annotations

from ._clients import count_matches, run_client
from ._description import Service
from ._docroot import make_docroot
from ._probes import exchange
from ._running import Running

#: h2load: requests, over one connection, with this many streams in flight at once.
H2LOAD_REQUESTS, H2LOAD_STREAMS = 100, 10
#: The client connection preface and an empty SETTINGS frame.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")


def _files(running: Running) -> dict[str, str]:
    make_docroot(running.workdir)
    return {}


def _command(running: Running) -> list[str]:
    return [
        "stdbuf", "-oL", "nghttpd", "--no-tls", "--verbose", f"--address={running.host}",
        "-d", str(running.workdir / "www"), str(running.port),
    ]  # fmt: skip


def _ready(running: Running) -> bool:
    # The server's SETTINGS frame: 9-byte header with type 4.
    return exchange(running, PREFACE, lambda reply: len(reply) >= 9 and reply[3] == 4)


def _traffic(running: Running) -> None:
    """Three concurrent streams with a 404 (nghttp), curl, then h2load's concurrent streams."""
    base = f"http://{running.host}:{running.port}"
    run_client("nghttp", "-n", f"{base}/index.html", f"{base}/missing", f"{base}/big.txt")
    run_client("curl", "-s", "-o", "/dev/null", "--http2-prior-knowledge", f"{base}/index.html")
    report = run_client(
        "h2load", "-n", str(H2LOAD_REQUESTS), "-c", "1", "-m", str(H2LOAD_STREAMS),
        f"{base}/index.html",
    ).decode()  # fmt: skip
    if f"{H2LOAD_REQUESTS} succeeded" not in report:
        raise AssertionError(f"h2load did not complete: {report[-300:]!r}")


def frame_counts(running: Running) -> dict[str, int]:
    """Frames nghttpd received, by type (``HEADERS``, ``SETTINGS``…)."""
    return count_matches(r"recv (\w+) frame", running.log())


HTTP2 = Service(
    name="http2",
    fixture="nghttpd.pcap",
    protocol="http2",
    package="nghttp2-server",
    # nghttpd names a response's content type from /etc/mime.types; a minbase
    # image lacks it, and its responses would differ from the host's.
    image_extras=("media-types",),
    program="nghttpd",
    port=18443,
    files=_files,
    command=_command,
    ready=_ready,
    traffic=_traffic,
    stats=frame_counts,
    clients=("nghttp", "curl", "h2load"),
)

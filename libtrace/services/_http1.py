"""HTTP/1.1: nginx, driven by curl (keep-alive, HEAD, POST, gzip) and raw pipelined requests."""

from __future__ import annotations

from ._clients import count_matches, raw_exchange, run_client
from ._description import Service
from ._docroot import make_docroot
from ._probes import exchange
from ._running import Running


def _files(running: Running) -> dict[str, str]:
    tmp = running.workdir
    make_docroot(tmp)
    return {
        "nginx.conf": f"""daemon off; worker_processes 1; pid {tmp}/nginx.pid; user root;
error_log stderr; events {{ worker_connections 64; }}
http {{ access_log {tmp}/access.log; client_body_temp_path {tmp}; proxy_temp_path {tmp};
  fastcgi_temp_path {tmp}; uwsgi_temp_path {tmp}; scgi_temp_path {tmp};
  gzip on; gzip_min_length 1; gzip_types text/plain;
  server {{ listen {running.host}:{running.port}; root {tmp}/www; }} }}
"""
    }


def _command(running: Running) -> list[str]:
    return ["nginx", "-c", str(running.workdir / "nginx.conf"), "-p", str(running.workdir)]


def _ready(running: Running) -> bool:
    return exchange(
        running,
        b"HEAD /ready HTTP/1.1\r\nHost: ready\r\nConnection: close\r\n\r\n",
        lambda reply: b"\r\n\r\n" in reply,
    )


def _traffic(running: Running) -> None:
    """Keep-alive GETs with a 404, HEAD, POST (405), gzip chunked, a chunked upload, pipelining."""
    base = f"http://{running.host}:{running.port}"
    curl = ["curl", "-s", "-o", "/dev/null"]
    run_client(*curl, f"{base}/index.html", f"{base}/missing")  # one keep-alive connection
    run_client("curl", "-s", "-I", f"{base}/index.html")
    run_client(*curl, "-X", "POST", "-d", "a=1", f"{base}/index.html")
    run_client(*curl, "-H", "Accept-Encoding: gzip", f"{base}/big.txt")  # chunked response
    run_client(
        *curl, "-H", "Transfer-Encoding: chunked", "--data-binary", "@-", f"{base}/index.html",
        input=b"chunked upload body",
    )  # fmt: skip
    raw_exchange(
        running.host,
        running.port,
        b"GET /index.html HTTP/1.1\r\nHost: pipelined\r\n\r\n"
        b"GET /nope HTTP/1.1\r\nHost: pipelined\r\nConnection: close\r\n\r\n",
    )


def access_counts(running: Running) -> dict[str, int]:
    """Requests in nginx's access log, by status code (``"200"``, ``"404"``)."""
    try:
        text = (running.workdir / "access.log").read_text()
    except OSError:
        return {}
    return count_matches(r'" (\d{3}) ', text)


HTTP1 = Service(
    name="http1",
    fixture="nginx.pcap",
    protocol="http1",
    package="nginx",
    program="nginx",
    port=18080,
    files=_files,
    command=_command,
    ready=_ready,
    traffic=_traffic,
    stats=access_counts,
    clients=("curl",),
)

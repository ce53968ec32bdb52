"""A test peer: an HTTP upstream that answers every GET after a fixed delay.

Usage: slow_upstream.py PORT DELAY_MS
nginx cannot delay a response by itself; a location proxied to this server
is a real path whose latency is at least DELAY_MS (``tests/stat``).
"""

from __future__ import annotations

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class SlowHandler(BaseHTTPRequestHandler):
    delay_s = 0.0

    def do_GET(self) -> None:
        time.sleep(self.delay_s)
        body = b"slow\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the test reads no log


def main() -> None:
    port, delay_ms = int(sys.argv[1]), float(sys.argv[2])
    SlowHandler.delay_s = delay_ms / 1000
    with ThreadingHTTPServer(("127.0.0.1", port), SlowHandler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()

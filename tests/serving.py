"""A directory served over HTTP on the loopback, for tests that download."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def served(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on a free loopback port; give its base URL.  Stopped after."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # A listening socket that never blocks: when a connection that select()
    # reported goes away before accept(), a blocking accept waits for the next
    # one, and shutdown() then waits for it forever (seen once, a hung test run).
    server.socket.setblocking(False)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)  # fmt: skip
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

"""The document root both HTTP servers serve: a small page and a large text file."""

from __future__ import annotations

from pathlib import Path

#: The large file's size: big enough for gzip to stream it chunked, and for many DATA frames.
BIG_FILE_REPEATS = 20000


def make_docroot(workdir: Path) -> Path:
    """Create ``www/`` in ``workdir`` with ``index.html`` and ``big.txt``."""
    root = workdir / "www"
    root.mkdir(exist_ok=True)
    (root / "index.html").write_text("<html>hello</html>\n")
    (root / "big.txt").write_text("libtrace " * BIG_FILE_REPEATS)
    return root

"""The host layer: what the harness shares about the machine it runs on.

Below :mod:`libtrace.vm`, :mod:`libtrace.services` and :mod:`libtrace.matrix`
(and importing none of them, nor the library): a private apt root on the
system's own mirror (:mod:`.apt`), the cache directory and its locks
(:mod:`.cache`), the runner that turns a failed tool into one error line
(:mod:`.tools`), and the Go toolchains the tests build with
(:mod:`.go_toolchains`, imported on its own).
"""

from .apt import (
    AptRoot,
    AptSource,
    PackageVersion,
    archive_uris,
    compare_versions,
    parse_sources,
    sources_list,
)
from .cache import MARKER, cache_dir, locked, user_cache_dir
from .errors import DownloadError, PackageNotFoundError
from .tools import run_tool, stderr_tail

__all__ = [
    "MARKER",
    "AptRoot",
    "AptSource",
    "DownloadError",
    "PackageNotFoundError",
    "PackageVersion",
    "archive_uris",
    "cache_dir",
    "compare_versions",
    "locked",
    "parse_sources",
    "run_tool",
    "sources_list",
    "stderr_tail",
    "user_cache_dir",
]

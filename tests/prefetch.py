"""Download what the tests would otherwise fetch on first use, or fail saying what.

``python -m tests.prefetch`` (``tox -e prefetch``; ``.ci/run`` runs it before the
tests) fills the caches the tests read, ``~/.cache/libtrace`` or
``$LIBTRACE_CACHE_DIR``, with:

- the Debian Go toolchains of :func:`selected_versions` (``tests/golang`` builds
  its programs with each, and skips a version whose toolchain cannot be had);
- the Debian kernels the tests boot or read: the catalog kernels of
  :data:`KERNELS`, the .deb of :data:`POINT_RELEASE` and the source tree of
  linux-source-:data:`SOURCE_SERIES`.

Why a step of its own: a mirror hiccup in the middle of a run skips or errors
tests far from its cause, and under ``LIBTRACE_STRICT_SKIPS=1`` a skip fails the
run anyway; here it fails the install step with one line that names what could
not be fetched.  Each fetch is the library's own cached, locked function (the
one the tests call), so a second run only finds markers, plus one check of the
package lists (refreshed once a day).
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from libtrace.errors import ExitCode, LibtraceError
from libtrace.host.apt import AptRoot
from libtrace.host.cache import MARKER, locked
from libtrace.host.go_toolchains import selected_versions, toolchain
from libtrace.vm import KernelNotFoundError, default_cache_dir, resolve
from libtrace.vm.build import _choose_source, source_tree
from libtrace.vm.kernels import CATALOG

Progress = Callable[[str], None]

#: The catalog kernels the tests resolve: the matrix's default rows (the VM, sweep
#: and prediction tests boot or read them) and 7.3, the split-packaged series
#: tests/vm/test_newer_series.py boots.  Named here rather than taken from the
#: matrix, whose import needs the package's dependencies: this module needs only
#: the standard library, so ``tox -e prefetch`` installs nothing.
KERNELS = ("debian-5.10", "debian-6.1", "debian-6.12", "debian-7.3")
#: The bullseye point release tests/matrix/test_user_kernels.py gives the matrix as
#: a .deb, a URL and a directory: one that no default row uses.
POINT_RELEASE = "5.10.223"
#: The series whose newest linux-source the kernel-build tests unpack (and build).
SOURCE_SERIES = "5.10"


def _apt(progress: Progress | None) -> AptRoot:
    """The kernel cache's apt root, with fresh package lists."""
    apt = AptRoot(default_cache_dir() / "apt")
    apt.update(progress=progress)
    return apt


def point_release_deb(progress: Progress | None = None) -> Path:
    """The linux-image .deb of :data:`POINT_RELEASE`, downloaded once into the kernel cache.

    Raises:
        KernelNotFoundError: the mirror has no such image.
        DownloadError: the package lists or the package could not be fetched.
    """
    entry = default_cache_dir() / "debs" / POINT_RELEASE
    with locked(entry):
        if (entry / MARKER).exists():
            return entry / (entry / MARKER).read_text().strip()
        apt = _apt(progress)
        images = apt.versions(CATALOG["debian-5.10"].packages)
        image = next((v for v in images if v.version.startswith(f"{POINT_RELEASE}-")), None)
        if image is None:
            raise KernelNotFoundError(f"no linux-image {POINT_RELEASE} on the configured mirror")
        deb = apt.download(image.name, image.version, entry, progress)
        (entry / MARKER).write_text(deb.name + "\n")  # last: a download cut short is redone
    return deb


def linux_source_tree(progress: Progress | None = None) -> Path:
    """The unpacked tree of the newest linux-source-:data:`SOURCE_SERIES` (unpacked once).

    Raises:
        KernelNotFoundError: the mirror has no such source package.
        DownloadError: the package lists or the package could not be fetched.
    """
    apt = _apt(progress)
    chosen = _choose_source(apt, SOURCE_SERIES, None)
    return source_tree(apt, chosen, default_cache_dir(), progress)


@dataclass(frozen=True, slots=True)
class Fetch:
    """One thing the tests download: what it is (for the output) and the call that fetches it."""

    what: str
    #: Called with ``progress=``; raises a :class:`LibtraceError` when the fetch fails.
    run: Callable[..., object]


def fetches() -> list[Fetch]:
    """Everything the tests download, in the order the prefetch fetches it."""
    return [
        *(Fetch(f"the Go {v} toolchain", functools.partial(toolchain, v))
          for v in selected_versions()),
        *(Fetch(f"the {name} kernel", functools.partial(resolve, name)) for name in KERNELS),
        Fetch(f"the linux-image {POINT_RELEASE} .deb", point_release_deb),
        Fetch(f"the linux-source-{SOURCE_SERIES} tree", linux_source_tree),
    ]  # fmt: skip


def _say(line: str) -> None:
    print(f"prefetch: {line}", flush=True)  # flushed: tox and CI logs show it as it happens


def main() -> int:
    """Fetch everything; on the first failure print one line on stderr and return 1."""
    start = time.monotonic()
    for fetch in fetches():
        _say(fetch.what)
        try:
            fetch.run(progress=lambda line: _say(f"  {line}"))
        except LibtraceError as exc:
            reason = " ".join(str(exc).splitlines())
            print(f"prefetch: could not fetch {fetch.what}: {reason}", file=sys.stderr)
            return ExitCode.FAILED
    _say(f"everything the tests download is cached ({time.monotonic() - start:.0f} s)")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())

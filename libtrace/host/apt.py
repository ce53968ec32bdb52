"""A private apt root for finding and downloading Debian packages (kernels, Go toolchains).

The system's apt state is never touched: lists, caches and the sources list
live under one directory of the caller's cache, and every apt command gets
``-o Dir::…`` options that point there.  The mirror is the one the system's
own apt configuration names (``/etc/apt/sources.list.d/*.sources`` in deb822
form, ``*.list`` and ``/etc/apt/sources.list`` in one-line form); only the
suites differ, so a machine behind a local mirror or proxy keeps using it.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import DownloadError, PackageNotFoundError
from .tools import stderr_tail

#: The suites whose kernels the catalog offers (see ARCHITECTURE.md for what is reachable).
SUITES = (
    "bullseye",
    "bullseye-security",
    "bookworm",
    "bookworm-security",
    "bookworm-backports",
    "trixie",
    "trixie-security",
    "trixie-backports",
    "sid",
    "experimental",
)

#: Debian code names, to tell a Debian archive entry from a third-party one.
DEBIAN_CODENAMES = frozenset(
    {
        "stretch",
        "buster",
        "bullseye",
        "bookworm",
        "trixie",
        "forky",
        "duke",
        "sid",
        "experimental",
        "stable",
        "oldstable",
        "testing",
        "unstable",
    }
)

#: Lists older than this are refreshed; a day keeps a sweep stable yet current.
LISTS_MAX_AGE_S = 24 * 3600

#: The keyring that holds every current Debian release key.
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")

#: Where the system's apt configuration lives.
SYSTEM_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))

#: Seconds an ``apt-get update`` or ``download`` may take before it counts as failed.
APT_TIMEOUT_S = 900

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class AptSource:
    """One ``deb`` entry of the system's apt configuration."""

    uri: str
    suites: tuple[str, ...]
    signed_by: str | None = None


@dataclass(frozen=True, slots=True)
class PackageVersion:
    """One version of one package, as ``apt-cache madison`` lists it."""

    name: str
    version: str
    suite: str


def _codename(suite: str) -> str:
    return suite.split("-", 1)[0]


def parse_sources(paths: Sequence[Path] = SYSTEM_SOURCES) -> list[AptSource]:
    """Read the ``deb`` entries of the system's apt configuration.

    Args:
        paths: files, or directories whose ``*.sources`` and ``*.list`` files are read.

    Returns:
        The enabled ``deb`` entries, in file order.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".sources", ".list"))
        elif path.is_file():
            files.append(path)
    entries: list[AptSource] = []
    for file in files:
        try:
            text = file.read_text(errors="replace")
        except OSError:
            continue
        if file.suffix == ".sources":
            entries += _parse_deb822(text)
        else:
            entries += _parse_one_line(text)
    return entries


def _parse_deb822(text: str) -> list[AptSource]:
    entries = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        suites = tuple(fields.get("suites", "").split())
        for uri in fields.get("uris", "").split():
            entries.append(AptSource(uri.rstrip("/"), suites, fields.get("signed-by")))
    return entries


def _parse_one_line(text: str) -> list[AptSource]:
    entries = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        options = re.search(r"\[([^\]]*)\]", line)
        signed_by = None
        if options:
            for option in options.group(1).split():
                if option.startswith("signed-by="):
                    signed_by = option.split("=", 1)[1]
            line = line[: options.start()] + line[options.end() :]
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "deb":
            entries.append(AptSource(parts[1].rstrip("/"), (parts[2],), signed_by))
    return entries


def archive_uris(entries: Iterable[AptSource]) -> tuple[str, str]:
    """Pick the Debian archive and security-archive URIs from the system's entries.

    Returns:
        ``(archive, security)``.  When the system names no security archive, the
        security URI is the archive's with ``-security`` appended, Debian's layout.

    Raises:
        DownloadError: the system's apt configuration names no Debian archive.
    """
    archive = security = None
    for entry in entries:
        for suite in entry.suites:
            if _codename(suite) not in DEBIAN_CODENAMES:
                continue
            if suite.endswith("-security"):
                security = security or entry.uri
            else:
                archive = archive or entry.uri
    if archive is None:
        raise DownloadError(
            "the system's apt configuration names no Debian archive to download kernels from"
        )
    return archive, security or archive + "-security"


def sources_list(suites: Sequence[str], entries: Iterable[AptSource]) -> str:
    """The one-line sources list for ``suites`` on the system's mirror."""
    entries = list(entries)
    archive, security = archive_uris(entries)
    keyring: str | None = str(DEBIAN_KEYRING) if DEBIAN_KEYRING.exists() else None
    if keyring is None:
        keyring = next((e.signed_by for e in entries if e.signed_by), None)
    options = f"[signed-by={keyring}] " if keyring and keyring.startswith("/") else ""
    lines = []
    for suite in suites:
        uri = security if suite.endswith("-security") else archive
        lines.append(f"deb {options}{uri} {suite} main")
    return "\n".join(lines) + "\n"


def _order(char: str) -> int:
    if char == "~":
        return -1
    if char.isdigit():
        return 0
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_part(a: str, b: str) -> int:
    while a or b:
        a_text = re.match(r"\D*", a).group()  # type: ignore[union-attr]
        b_text = re.match(r"\D*", b).group()  # type: ignore[union-attr]
        a, b = a[len(a_text) :], b[len(b_text) :]
        for i in range(max(len(a_text), len(b_text))):
            ca = _order(a_text[i]) if i < len(a_text) else 0
            cb = _order(b_text[i]) if i < len(b_text) else 0
            if ca != cb:
                return -1 if ca < cb else 1
        a_num = re.match(r"\d*", a).group()  # type: ignore[union-attr]
        b_num = re.match(r"\d*", b).group()  # type: ignore[union-attr]
        a, b = a[len(a_num) :], b[len(b_num) :]
        if int(a_num or 0) != int(b_num or 0):
            return -1 if int(a_num or 0) < int(b_num or 0) else 1
    return 0


def compare_versions(a: str, b: str) -> int:
    """Compare two Debian versions as dpkg does: negative, zero or positive."""

    def split(version: str) -> tuple[int, str, str]:
        epoch, _, rest = version.partition(":") if ":" in version else ("0", "", version)
        upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")
        return int(epoch or 0), upstream, revision

    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


class AptRoot:
    """A private apt state directory with its own sources list.

    Args:
        root: the directory (created on first use).
        suites: the suites the sources list names.
    """

    def __init__(self, root: Path, suites: Sequence[str] = SUITES) -> None:
        self.root = root
        self.suites = tuple(suites)

    def options(self) -> list[str]:
        """The ``-o`` options that point apt at this root and nowhere else."""
        settings = {
            "Dir::State::Lists": self.root / "lists",
            "Dir::State::status": "/dev/null",
            "Dir::Cache": self.root / "cache",
            "Dir::Cache::pkgcache": self.root / "cache" / "pkgcache.bin",
            "Dir::Cache::srcpkgcache": "",
            "Dir::Etc::SourceList": self.root / "sources.list",
            "Dir::Etc::SourceParts": "/dev/null",
            "APT::Architecture": "amd64",
            # The download lands in our cache directory, which _apt cannot write.
            "APT::Sandbox::User": "root",
        }
        return [arg for key, value in settings.items() for arg in ("-o", f"{key}={value}")]

    def _run(self, tool: str, *args: str, cwd: Path | None = None) -> str:
        argv = [tool, *self.options(), *args]
        try:
            proc = subprocess.run(
                argv,
                cwd=cwd,
                capture_output=True,
                text=True,
                timeout=APT_TIMEOUT_S,
                env={**os.environ, "LC_ALL": "C"},
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DownloadError(f"{tool} {args[0]} could not run: {exc}") from exc
        if proc.returncode != 0:
            detail = stderr_tail(proc.stderr, proc.returncode)
            raise DownloadError(f"{tool} {' '.join(args)} failed: {detail}")
        return proc.stdout

    @property
    def has_lists(self) -> bool:
        """True when an update has succeeded at least once."""
        return (self.root / "updated").exists()

    def update(
        self, *, max_age_s: float = LISTS_MAX_AGE_S, progress: Progress | None = None
    ) -> None:
        """Refresh the package lists when they are missing, stale or for another mirror.

        Raises:
            DownloadError: the update failed and no earlier lists exist to fall back on.
        """
        for sub in ("lists/partial", "cache/archives/partial"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        text = sources_list(self.suites, parse_sources())
        with open(self.root / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            stamp = self.root / "updated"
            current = (self.root / "sources.list").exists() and (
                self.root / "sources.list"
            ).read_text() == text
            if current and stamp.exists() and time.time() - stamp.stat().st_mtime < max_age_s:
                return
            (self.root / "sources.list").write_text(text)
            if progress:
                progress(f"updating package lists for {', '.join(self.suites)}")
            try:
                self._run("apt-get", "update", "-q")
            except DownloadError:
                if current and stamp.exists():
                    if progress:
                        progress("package list update failed; using the previous lists")
                    return
                raise
            stamp.touch()

    def versions(self, pattern: re.Pattern[str]) -> list[PackageVersion]:
        """Every version of every package whose name fully matches ``pattern``."""
        prefix = re.match(r"[\w.+-]*", pattern.pattern.lstrip("^")).group()  # type: ignore[union-attr]
        names = [
            name
            for name in self._run("apt-cache", "pkgnames", prefix).split()
            if pattern.fullmatch(name)
        ]
        if not names:
            return []
        found = []
        for line in self._run("apt-cache", "madison", *sorted(names)).splitlines():
            fields = [field.strip() for field in line.split("|")]
            if len(fields) != 3 or fields[0] not in names:
                continue
            origin = fields[2].split()
            suite = origin[1].split("/", 1)[0] if len(origin) > 1 else ""
            found.append(PackageVersion(fields[0], fields[1], suite))
        return found

    def download(
        self, package: str, version: str, dest: Path, progress: Progress | None = None
    ) -> Path:
        """Download one package version into ``dest`` and return the ``.deb`` path.

        Raises:
            PackageNotFoundError: apt does not know this package version.
            DownloadError: the download failed.
        """
        dest.mkdir(parents=True, exist_ok=True)
        for stale in dest.glob("*.deb"):
            stale.unlink()
        if progress:
            progress(f"downloading {package} {version}")
        try:
            self._run("apt-get", "download", "-q", f"{package}={version}", cwd=dest)
        except DownloadError as exc:
            if "Unable to locate" in str(exc) or "not found" in str(exc):
                raise PackageNotFoundError(
                    f"no package {package} {version} in {self.suites}"
                ) from exc
            raise
        debs = sorted(dest.glob("*.deb"))
        if len(debs) != 1:
            raise DownloadError(f"apt-get download {package}={version} left no .deb in {dest}")
        return debs[0]

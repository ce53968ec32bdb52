"""Kernel configuration for kernels built from source: the fragment and its checks.

Theory of operation
-------------------
A built kernel starts from a base configuration (``make tinyconfig`` for the
``minimal`` config, Debian's own ``/boot/config-*`` for ``distro``) and has
:data:`FRAGMENT` merged over it with the kernel's ``merge_config.sh``, then
``make olddefconfig`` settles the dependencies.  Kconfig silently drops an
option whose dependencies are unmet, so :func:`check` reads the final
``.config`` back and demands every option the fragment asked for; a fragment
that cannot be satisfied is an error before any compiling starts.

The fragment is what three parties need:

* the VM runner (``initramfs.py``): virtio-pci, 9p over virtio, overlayfs,
  devtmpfs, tmpfs, an initramfs, a serial console, a PVH entry point so QEMU
  boots the ELF directly (``_vmlinux.py``);
* the host's CPython, pytest and the test peers, which run in the guest over
  9p: ELF and ``#!`` binaries, futexes, epoll, eventfd, timerfd, signalfd,
  POSIX timers, unix sockets, IPv4 and IPv6, /dev/shm, ptys, file locks;
* the tracer: ``bpf()`` with the JIT, syscall tracepoints, uprobes, perf
  events, cgroups, and (unless disabled) BTF from DWARF through pahole.

Features named by ``--disable`` (:data:`FEATURES`) turn options off again
after the fragment; ``btf`` is the one the matrix cares about.

A tree older than an option does not define it at all (no ``DEBUG_INFO_BTF``
before 5.2, no ``PVH`` before 5.0).  That is a fact about the tree, not a
failure: :func:`defined_symbols` scans the tree's ``Kconfig*`` files,
:func:`absent` names the fragment's options missing there, and :func:`check`
leaves them out.  An option the tree defines but the result lacks is still an
error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

#: Options every built kernel has, and their values ("y", "n" or a quoted string).
FRAGMENT: dict[str, str] = {
    # --- the machine and the boot ---
    "64BIT": "y",
    "PRINTK": "y",
    "TTY": "y",
    "SERIAL_8250": "y",
    "SERIAL_8250_CONSOLE": "y",
    "BLK_DEV_INITRD": "y",
    "RD_GZIP": "y",
    "HYPERVISOR_GUEST": "y",
    "PVH": "y",  # QEMU's -kernel boots the ELF vmlinux through its PVH note
    "KERNEL_GZIP": "y",  # tinyconfig picks xz: slower to build and to boot under TCG
    "RTC_CLASS": "y",
    "RTC_HCTOSYS": "y",
    "RTC_DRV_CMOS": "y",  # a wall clock, so file times and TLS certificates make sense
    "HIGH_RES_TIMERS": "y",
    "LOCALVERSION_AUTO": "n",
    "IKCONFIG": "y",  # a bare bzImage carries its own config …
    "IKCONFIG_PROC": "y",  # … and the guest reads it as /proc/config.gz
    # --- devices and file systems the initramfs mounts ---
    "PCI": "y",
    "VIRTIO_MENU": "y",
    "VIRTIO": "y",
    "VIRTIO_PCI": "y",
    "NET_9P": "y",
    "NET_9P_VIRTIO": "y",
    "NETWORK_FILESYSTEMS": "y",
    "9P_FS": "y",
    "OVERLAY_FS": "y",
    "PROC_FS": "y",
    "PROC_SYSCTL": "y",
    "SYSFS": "y",
    "DEVTMPFS": "y",
    "TMPFS": "y",
    "SHMEM": "y",
    "UNIX98_PTYS": "y",
    "DEBUG_FS": "y",
    # --- what CPython, pytest and the peers use ---
    "BINFMT_ELF": "y",
    "BINFMT_SCRIPT": "y",
    "MULTIUSER": "y",
    "FUTEX": "y",
    "EPOLL": "y",
    "EVENTFD": "y",
    "SIGNALFD": "y",
    "TIMERFD": "y",
    "POSIX_TIMERS": "y",
    "FILE_LOCKING": "y",
    "INOTIFY_USER": "y",
    "FHANDLE": "y",
    "ADVISE_SYSCALLS": "y",
    "SYSVIPC": "y",
    "AIO": "y",
    "NET": "y",
    "INET": "y",
    "IPV6": "y",
    "UNIX": "y",
    "PACKET": "y",  # AF_PACKET sockets: tcpdump in the guest (the check_* columns)
    # --- what the tracer needs ---
    "BPF": "y",
    "BPF_SYSCALL": "y",
    "MODULES": "y",  # 5.10's BPF_JIT depends on it (nothing is built as a module)
    "BPF_JIT": "y",
    "BPF_EVENTS": "y",
    "KALLSYMS": "y",
    "PERF_EVENTS": "y",
    "FTRACE": "y",
    "FTRACE_SYSCALLS": "y",
    "UPROBES": "y",
    "UPROBE_EVENTS": "y",
    "CGROUPS": "y",
    "CGROUP_BPF": "y",
    "DEBUG_INFO": "y",
    "DEBUG_INFO_DWARF4": "y",
    "DEBUG_INFO_BTF": "y",
}

#: ``--disable`` names and the options each turns off.
FEATURES: dict[str, tuple[str, ...]] = {
    "btf": ("DEBUG_INFO_BTF",),
    "jit": ("BPF_JIT",),
    "uprobes": ("UPROBE_EVENTS", "UPROBES"),
    "cgroup-bpf": ("CGROUP_BPF",),
}

#: Options a distro base config sets that a local build cannot honour.
DISTRO_OVERRIDES: dict[str, str] = {
    "SYSTEM_TRUSTED_KEYS": '""',  # Debian's certificate is not in the source package
    "SYSTEM_REVOCATION_KEYS": '""',
    "MODULE_SIG_ALL": "n",
    "DEBUG_INFO_REDUCED": "n",  # BTF needs full DWARF
    "DEBUG_INFO_SPLIT": "n",
}

_LINE_RE = re.compile(r"CONFIG_(\w+)=(.*)|# CONFIG_(\w+) is not set")

#: A symbol's definition in a Kconfig file (``config NAME`` or ``menuconfig NAME``).
_DEFINITION_RE = re.compile(r"(?:menu)?config\s+(\w+)")

#: The line that starts a help text (prose, where "config" may start a line too).
_HELP_RE = re.compile(r"(?:help|---help---)\s*(?:#.*)?")

#: The architecture builds are for; other ``arch/*`` directories define symbols
#: an x86 build can never have.
ARCH_DIR = "x86"


class FragmentError(ValueError):
    """A feature name is unknown or a fragment line is malformed."""


@dataclass(frozen=True, slots=True)
class Fragment:
    """The options a build asks for, in the order they are written."""

    options: tuple[tuple[str, str], ...]

    def text(self) -> str:
        """The fragment as ``.config`` lines (what ``merge_config.sh`` reads)."""
        return "".join(
            f"# CONFIG_{name} is not set\n" if value == "n" else f"CONFIG_{name}={value}\n"
            for name, value in self.options
        )

    def as_dict(self) -> dict[str, str]:
        return dict(self.options)


def fragment_for(
    disable: Iterable[str] = (),
    *,
    distro_base: Mapping[str, str] | None = None,
    localversion: str = "",
    extra: Mapping[str, str] | None = None,
) -> Fragment:
    """The fragment for a build.

    Args:
        disable: names from :data:`FEATURES` to turn off.
        distro_base: a Debian base config (as :func:`parse` reads it): the
            :data:`DISTRO_OVERRIDES` it sets are added.
        localversion: appended to the release (``CONFIG_LOCALVERSION``).
        extra: more options, e.g. from a user's fragment file; they win.

    Raises:
        FragmentError: an unknown feature name.
    """
    options = dict(FRAGMENT)
    if distro_base is not None:
        options.update({k: v for k, v in DISTRO_OVERRIDES.items() if k in distro_base})
    for feature in disable:
        if feature not in FEATURES:
            raise FragmentError(
                f"unknown feature {feature!r} to disable (known: {', '.join(FEATURES)})"
            )
        for name in FEATURES[feature]:
            options[name] = "n"
    if localversion:
        options["LOCALVERSION"] = f'"{localversion}"'
    options.update(extra or {})
    return Fragment(tuple(options.items()))


def parse(text: str) -> dict[str, str]:
    """Read ``.config`` text: ``{name: value}`` with "n" for "is not set"."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE_RE.fullmatch(line.strip())
        if match is None:
            continue
        if match.group(3):
            values[match.group(3)] = "n"
        else:
            values[match.group(1)] = match.group(2)
    return values


def parse_fragment(text: str, origin: str = "fragment") -> dict[str, str]:
    """Read a user's fragment file strictly: every non-comment line must be an option.

    Raises:
        FragmentError: a line is neither an option, a ``# … is not set`` nor a comment.
    """
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        match = _LINE_RE.fullmatch(stripped)
        if match is None:
            if not stripped or stripped.startswith("#"):
                continue
            raise FragmentError(f"{origin} line {number} is not a config option: {stripped!r}")
        if match.group(3):
            values[match.group(3)] = "n"
        else:
            values[match.group(1)] = match.group(2)
    return values


def defined_symbols(tree: Path) -> frozenset[str]:
    """Every config symbol the kernel tree ``tree`` defines for an x86 build.

    Reads each ``Kconfig*`` file (``arch/`` only for :data:`ARCH_DIR`) for
    ``config NAME`` and ``menuconfig NAME`` lines.  Unreadable files are skipped.
    """
    found: set[str] = set()
    for top, dirs, files in os.walk(tree):
        if Path(top) == tree / "arch":
            dirs[:] = [d for d in dirs if d == ARCH_DIR]
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith("Kconfig"):
                continue
            try:
                text = Path(top, name).read_text(errors="replace")
            except OSError:
                continue
            found.update(kconfig_definitions(text))
    return frozenset(found)


def kconfig_definitions(text: str) -> list[str]:
    """The symbols one Kconfig file defines, help texts skipped.

    A help text runs, as in Kconfig's own lexer, while lines are indented at
    least as deep as its first line.
    """
    found = []
    help_indent: int | None = None  # inside a help text: the depth of its first line
    in_help = False
    for line in text.expandtabs(8).splitlines():
        stripped = line.lstrip()
        if in_help:
            if not stripped:
                continue
            indent = len(line) - len(stripped)
            if help_indent is None:
                help_indent = indent
            if indent >= help_indent:
                continue
            in_help = False
        match = _DEFINITION_RE.match(stripped)
        if match:
            found.append(match.group(1))
        elif _HELP_RE.fullmatch(stripped.rstrip()):
            in_help, help_indent = True, None
    return found


def absent(fragment: Fragment, defined: Collection[str]) -> list[str]:
    """The fragment's option names (without ``CONFIG_``) that ``defined`` lacks, in order."""
    return [name for name, _ in fragment.options if name not in defined]


def check(
    config: Path,
    fragment: Fragment,
    *,
    allow_modules: bool = False,
    defined: Collection[str] | None = None,
) -> list[str]:
    """The fragment options the final ``.config`` does not honour, as messages.

    Args:
        config: the ``.config`` after ``olddefconfig``.
        fragment: what was asked for.
        allow_modules: accept ``m`` where ``y`` was asked (a distro build with modules).
        defined: the symbols the tree defines (:func:`defined_symbols`); options
            outside it are not checked (None: check every option).
    """
    have = parse(config.read_text())
    problems = []
    for name, want in fragment.options:
        if defined is not None and name not in defined:
            continue
        got = have.get(name, "n")
        if got == want or (want == "n" and got == "n"):
            continue
        if allow_modules and want == "y" and got == "m":
            continue
        shown = "not set" if got == "n" else got
        problems.append(f"CONFIG_{name}={want} was asked for but the result is {shown}")
    return problems

"""Build the guest's initramfs: busybox, a handful of modules and an /init script.

Theory of operation
-------------------
The guest does not get a disk.  Its root filesystem is the *host's* root,
exported read-only by QEMU over virtio-9p (tag ``hostroot``) and made
writable with an overlay whose upper layer is a tmpfs, so the guest runs the
host's Python and the repository's code without copying anything.  A second
9p share (tag ``results``, read-write) is a host directory: the payload
command comes in through it (``cmd.sh`` plus ``env.sh``, so the kernel command
line stays short and the initramfs stays the same for every payload), and
the exit code and any result files the payload writes go out through it.

The initramfs therefore only needs to reach that root.  It holds a static
busybox, the modules that virtio-pci, 9p over virtio and overlayfs need on
*this* kernel, and ``/init``:

1. mounts proc, sys and devtmpfs, prints ``LIBTRACE-BOOTED`` (boot time is
   measured to this line), and insmods the modules in dependency order;
2. mounts ``hostroot`` on /mnt/lower, a tmpfs on /mnt/rw and the overlay on
   /newroot; then proc, sys, dev (+pts, shm), tracefs, debugfs, bpffs,
   cgroup2, and a tmpfs on /run inside it (/tmp stays the host's, through
   the overlay, so a checkout or a cwd under the host's /tmp works in the
   guest); then the ``results`` share on /newroot/run/libtrace-results; and
   brings up loopback;
3. runs the payload with ``chroot /newroot``, writes its exit status to
   ``exit_code`` in the results share and prints ``LIBTRACE-EXIT: <code>``
   on the console, syncs and calls ``reboot -f`` (QEMU runs with
   ``-no-reboot``, so it exits).  Any set-up failure prints
   ``LIBTRACE-ERROR: <what>`` and reboots the same way.

Which modules are needed differs between kernels (5.10 needs fscache, 6.1
netfs and fscache, 6.12 netfs, and builds virtio-pci in), so the chain is
resolved from the kernel's own ``modules.dep`` and ``modules.builtin``.
Modules may be ``.ko``, ``.ko.xz``, ``.ko.zst`` or ``.ko.gz``; busybox insmod
is given plain ``.ko`` files, decompressed here.  The image is an
uncompressed newc cpio (the kernel unpacks it faster than it would inflate
it under TCG) named by a hash of everything in it, so it is built once per
kernel and init script.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import shutil
import stat
import subprocess
from pathlib import Path

from ..host.cache import locked
from ._errors import InitramfsError, MissingModuleError
from .kernels import Kernel

#: The modules /init loads, by name; their dependencies come from modules.dep.
REQUIRED_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")

#: Where the results share is mounted inside the guest.
GUEST_RESULTS = "/run/libtrace-results"

#: Console sentinels printed by /init (the runner parses them).
BOOTED_SENTINEL = "LIBTRACE-BOOTED"
START_SENTINEL = "LIBTRACE-START"
EXIT_SENTINEL = "LIBTRACE-EXIT:"
ERROR_SENTINEL = "LIBTRACE-ERROR:"

#: The static busybox (package busybox-static).
BUSYBOX = Path("/bin/busybox")

#: 9p message size: large messages make file reads over 9p several times faster;
#: 256 KiB fits the virtio ring of every kernel from 5.4 on.
NINEP_MSIZE = 262144

#: Bumped whenever the image layout changes, so old cached images are not reused.
FORMAT = "libtrace-initramfs-1"

INIT_SCRIPT = f"""#!/bin/sh
# libtrace guest init: see libtrace/vm/initramfs.py for the theory of operation.
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo {BOOTED_SENTINEL}

fail() {{
    echo "{ERROR_SENTINEL} $*"
    sync
    reboot -f
    echo b > /proc/sysrq-trigger
}}

for module in $(cat /modules.list); do
    insmod "/lib/modules/$module" || fail "insmod $module failed"
done

# The virtio devices may bind a moment after their driver loads: retry the mount.
mount9p() {{
    tries=0
    until mount -t 9p -o "trans=virtio,version=9p2000.L,msize={NINEP_MSIZE},$2" "$1" "$3"; do
        tries=$((tries + 1))
        [ $tries -ge 50 ] && return 1
        sleep 0.1
    done
}}

mkdir -p /mnt/lower /mnt/rw /newroot
mount9p hostroot ro,cache=loose /mnt/lower || fail "cannot mount the host root over 9p"
mount -t tmpfs -o mode=0755 tmpfs /mnt/rw
mkdir -p /mnt/rw/upper /mnt/rw/work
mount -t overlay overlay \\
    -o lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work /newroot \\
    || fail "cannot mount the overlay root"

R=/newroot
mount -t proc proc $R/proc || fail "cannot mount proc in the new root"
mount -t sysfs sysfs $R/sys || fail "cannot mount sysfs in the new root"
mount -t devtmpfs devtmpfs $R/dev || fail "cannot mount devtmpfs in the new root"
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mount -t bpf bpf $R/sys/fs/bpf 2>/dev/null
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup 2>/dev/null
mount -t tmpfs tmpfs $R/run
mkdir -p $R{GUEST_RESULTS}
mount9p results rw $R{GUEST_RESULTS} || fail "cannot mount the results share over 9p"
ip link set lo up

echo {START_SENTINEL}
chroot $R /bin/sh -c '. {GUEST_RESULTS}/env.sh && exec /bin/sh {GUEST_RESULTS}/cmd.sh' \\
    </dev/console >/dev/console 2>&1
code=$?
echo $code > $R{GUEST_RESULTS}/exit_code
sync
echo "{EXIT_SENTINEL} $code"
reboot -f
echo b > /proc/sysrq-trigger
"""


def module_name(path: str) -> str:
    """``kernel/net/9p/9pnet_virtio.ko.xz`` → ``9pnet_virtio`` (dashes become underscores)."""
    base = os.path.basename(path)
    base = base[: base.index(".ko")] if ".ko" in base else base
    return base.replace("-", "_")


def _read_dep(modules: Path) -> tuple[dict[str, tuple[str, list[str]]], set[str]]:
    try:
        dep_text = (modules / "modules.dep").read_text()
    except OSError as exc:
        raise InitramfsError(
            f"{modules} has no readable modules.dep (run depmod): {exc.strerror}"
        ) from exc
    deps: dict[str, tuple[str, list[str]]] = {}
    for line in dep_text.splitlines():
        path, sep, rest = line.partition(":")
        if sep:
            deps[module_name(path)] = (path.strip(), rest.split())
    try:
        builtin_text = (modules / "modules.builtin").read_text()
    except OSError:
        builtin_text = ""
    builtin = {module_name(line) for line in builtin_text.split()}
    return deps, builtin


def resolve_modules(
    modules: Path | None, required: tuple[str, ...] = REQUIRED_MODULES, *, kernel: str = ""
) -> list[str]:
    """The module files to load, dependencies first, for ``required``.

    Args:
        modules: the kernel's ``lib/modules/<release>`` directory; None means every
            needed module is built in (a custom kernel without modules).
        required: module names.
        kernel: the kernel's name, for messages.

    Returns:
        Paths relative to ``modules``, in load order; built-in modules are left out.

    Raises:
        MissingModuleError: a required module or dependency is neither built in nor shipped.
        InitramfsError: there is no modules.dep.
    """
    if modules is None:
        return []
    deps, builtin = _read_dep(modules)
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str, wanted_by: str) -> None:
        name = name.replace("-", "_")
        if name in builtin or name in visiting:
            return
        if name not in deps:
            raise MissingModuleError(
                name, kernel or str(modules), f"needed by {wanted_by}" if wanted_by != name else ""
            )
        path, needs = deps[name]
        if path in order:
            return
        visiting.add(name)
        # modules.dep lists the whole closure, the module loaded last first.
        for dep in reversed(needs):
            visit(module_name(dep), name)
        visiting.discard(name)
        order.append(path)

    for name in required:
        visit(name, name)
    return order


def _decompress(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".ko"):
        return data
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        zstd = shutil.which("zstd")
        if zstd is None:
            raise InitramfsError(f"{path.name} needs the zstd tool (package zstd)")
        proc = subprocess.run([zstd, "-dcq", str(path)], capture_output=True)
        if proc.returncode != 0:
            raise InitramfsError(f"zstd could not decompress {path}")
        return proc.stdout
    raise InitramfsError(f"{path} has an unknown module compression")


def _check_static(busybox: Path) -> bytes:
    try:
        data = busybox.read_bytes()
    except OSError as exc:
        raise InitramfsError(
            f"{busybox} is missing: install busybox-static ({exc.strerror})"
        ) from exc
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise InitramfsError(f"{busybox} is not a 64-bit ELF executable")
    phoff = int.from_bytes(data[0x20:0x28], "little")
    phentsize = int.from_bytes(data[0x36:0x38], "little")
    for i in range(int.from_bytes(data[0x38:0x3A], "little")):
        if int.from_bytes(data[phoff + i * phentsize : phoff + i * phentsize + 4], "little") == 3:
            raise InitramfsError(f"{busybox} is dynamically linked: install busybox-static")
    return data


class _Cpio:
    """A minimal writer of the ``newc`` cpio format the kernel unpacks."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.ino = 1

    def _entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
        self.ino += 1
        header = b"070701" + b"".join(b"%08x" % f for f in fields)
        blob = header + name.encode() + b"\0"
        blob += b"\0" * (-len(blob) % 4) + data
        self.chunks.append(blob + b"\0" * (-len(blob) % 4))

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | perm, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return b"".join(self.chunks)


def _image(busybox: bytes, modules: Path | None, order: list[str]) -> bytes:
    cpio = _Cpio()
    for directory in ("bin", "dev", "proc", "sys", "mnt", "newroot", "tmp", "lib", "lib/modules"):
        cpio.directory(directory)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/null", 1, 3)
    cpio.file("bin/busybox", busybox, 0o755)
    cpio.symlink("bin/sh", "busybox")
    cpio.file("init", INIT_SCRIPT.encode(), 0o755)
    names = []
    for rel in order:
        assert modules is not None
        name = module_name(rel) + ".ko"
        cpio.file(f"lib/modules/{name}", _decompress(modules / rel))
        names.append(name)
    cpio.file("modules.list", ("\n".join(names) + "\n").encode())
    return cpio.finish()


def build_initramfs(kernel: Kernel, out: Path) -> Path:
    """Build (or reuse) the initramfs for ``kernel``.

    Args:
        kernel: a non-host kernel.
        out: a directory, where the image is named ``initramfs-<hash>.cpio`` by the
            hash of its contents; or a file path (with a suffix), rebuilt unless the
            ``<out>.key`` beside it holds the same hash.

    Returns:
        The path of the image.

    Raises:
        MissingModuleError: the kernel lacks 9p, virtio-pci or overlay support.
        InitramfsError: busybox-static is missing or a module cannot be read.
    """
    if kernel.is_host:
        raise InitramfsError("the host kernel boots no initramfs")
    order = resolve_modules(kernel.modules, kernel=kernel.name)
    busybox = _check_static(BUSYBOX)
    digest = hashlib.sha256()
    for part in (FORMAT.encode(), INIT_SCRIPT.encode(), busybox):
        digest.update(hashlib.sha256(part).digest())
    for rel in order:
        assert kernel.modules is not None
        try:
            digest.update(
                rel.encode() + hashlib.sha256((kernel.modules / rel).read_bytes()).digest()
            )
        except OSError as exc:
            raise InitramfsError(
                f"cannot read module {kernel.modules / rel}: {exc.strerror}"
            ) from exc
    key = digest.hexdigest()
    if out.suffix:
        target, key_file = out, out.with_name(out.name + ".key")
    else:
        target, key_file = out / f"initramfs-{key[:20]}.cpio", None
    target.parent.mkdir(parents=True, exist_ok=True)
    with locked(target):
        fresh = target.is_file() and (
            key_file is None or (key_file.is_file() and key_file.read_text().strip() == key)
        )
        if not fresh:
            partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
            partial.write_bytes(_image(busybox, kernel.modules, order))
            os.replace(partial, target)
            if key_file is not None:
                key_file.write_text(key + "\n")
    return target

"""Boot faster under TCG: hand QEMU the kernel already decompressed.

A bzImage decompresses itself on every boot; under TCG that costs about three
seconds for an xz-compressed Debian kernel (half a second for zstd).  A
kernel built with ``CONFIG_PVH`` (every Debian kernel from 5.10 on) is also
an ELF ``vmlinux`` with a PVH entry note, which QEMU's ``-kernel`` loads
directly.  So the payload of the bzImage is decompressed once, here, and
cached by the image's hash; when the payload's compression is unknown or the
ELF has no PVH note, the bzImage is booted as it is.
"""

from __future__ import annotations

import bz2
import hashlib
import lzma
import os
import subprocess
import zlib
from pathlib import Path

from ..host.cache import locked

#: Set to 0 to always boot the bzImage itself.
PVH_ENV = "LIBTRACE_VM_PVH"

#: Part of the cache key: bump it when extraction changes, to retry "no-pvh" verdicts.
FORMAT = b"libtrace-vmlinux-1"

#: Xen's ELF note type for the 32-bit PVH entry point, which QEMU looks for.
XEN_ELFNOTE_PHYS32_ENTRY = 18


def _payload(image: bytes) -> bytes | None:
    if len(image) < 0x250 or image[0x202:0x206] != b"HdrS":
        return None
    setup_sects = image[0x1F1] or 4
    offset = (setup_sects + 1) * 512 + int.from_bytes(image[0x248:0x24C], "little")
    return image[offset : offset + int.from_bytes(image[0x24C:0x250], "little")]


def decompress_payload(image: bytes) -> bytes | None:
    """The ELF vmlinux inside a bzImage, or None for an unknown compression."""
    data = _payload(image)
    if not data:
        return None
    try:
        if data.startswith(b"\xfd7zXZ\0"):
            out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)
        elif data.startswith(b"\x1f\x8b"):
            out = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
        elif data.startswith(b"\x28\xb5\x2f\xfd"):
            # The kernel appends the decompressed size, which zstd calls trailing garbage.
            proc = subprocess.run(["zstd", "-dcq"], input=data[:-4], capture_output=True)
            out = proc.stdout
        elif data.startswith(b"BZh"):
            out = bz2.BZ2Decompressor().decompress(data)
        elif data.startswith(b"\x5d\0\0"):
            out = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data)
        else:
            return None
    except (OSError, ValueError, EOFError, lzma.LZMAError):
        return None
    return out if out.startswith(b"\x7fELF") else None


def has_pvh_note(elf: bytes) -> bool:
    """True when a 64-bit little-endian ELF has Xen's PHYS32_ENTRY note (PVH boot)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        return False
    phoff = int.from_bytes(elf[0x20:0x28], "little")
    phentsize = int.from_bytes(elf[0x36:0x38], "little")
    for i in range(int.from_bytes(elf[0x38:0x3A], "little")):
        ph = elf[phoff + i * phentsize : phoff + (i + 1) * phentsize]
        if int.from_bytes(ph[0:4], "little") != 4:  # PT_NOTE
            continue
        pos = int.from_bytes(ph[8:16], "little")
        end = pos + int.from_bytes(ph[32:40], "little")
        while pos + 12 <= end:
            namesz, descsz, kind = (
                int.from_bytes(elf[pos + 4 * j : pos + 4 * j + 4], "little") for j in range(3)
            )
            name = elf[pos + 12 : pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and kind == XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def boot_image(vmlinuz: Path, cache: Path) -> Path:
    """The file to give ``-kernel``: a cached PVH vmlinux when possible, else ``vmlinuz``."""
    if os.environ.get(PVH_ENV, "1") == "0":
        return vmlinuz
    try:
        image = vmlinuz.read_bytes()
    except OSError:
        return vmlinuz
    key = hashlib.sha256(FORMAT + image).hexdigest()[:24]
    elf, none = cache / f"{key}.vmlinux", cache / f"{key}.no-pvh"
    cache.mkdir(parents=True, exist_ok=True)
    with locked(elf):
        if elf.is_file():
            return elf
        if none.exists():
            return vmlinuz
        out = decompress_payload(image)
        if out is None or not has_pvh_note(out):
            none.touch()
            return vmlinuz
        partial = elf.with_name(f"{elf.name}.{os.getpid()}.partial")
        partial.write_bytes(out)
        os.replace(partial, elf)
    return elf

"""The running kernel's own LINUX_VERSION_CODE, read from its vDSO.

Before 5.0, ``bpf_prog_load()`` refuses a kprobe-type program (uprobes are
kprobe programs) unless ``kern_version`` equals the kernel's
LINUX_VERSION_CODE.  libbpf fills it from ``uname()``, which is wrong on the
4.14.y and 4.19.y stable trees: their Makefile pins the code's sublevel at
255 once the real sublevel passed it (a 4.19.y past sublevel 255 says 4.19.255), and distros
patch it too.  The kernel writes the true code into the vDSO it maps into
every process, as the descriptor of an ELF note named ``Linux`` (type 0,
``ELFNOTE_START(Linux, 0, "a")`` in ``arch/x86/entry/vdso/vdso-note.S``).
That is the value the kernel compares with, so it is the one handed to libbpf.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import struct

from elftools.common.exceptions import ELFError
from elftools.construct import ConstructError
from elftools.elf.elffile import ELFFile

#: getauxval(AT_SYSINFO_EHDR): where the kernel mapped the vDSO's ELF header.
AT_SYSINFO_EHDR = 33


def _vdso_bytes() -> bytes | None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.getauxval.restype = ctypes.c_ulong
    libc.getauxval.argtypes = [ctypes.c_ulong]
    base = int(libc.getauxval(AT_SYSINFO_EHDR))
    if not base:
        return None
    # The vDSO is readable memory of this process; its size from /proc/self/maps.
    with open("/proc/self/maps") as maps:
        for line in maps:
            if line.rstrip().endswith("[vdso]"):
                start, end = (int(part, 16) for part in line.split()[0].split("-"))
                if start == base:
                    return ctypes.string_at(base, end - start)
    return None


def notes(image: bytes) -> list[tuple[bytes, int, bytes]]:
    """(name, type, descriptor) of every note in an ELF image's PT_NOTE segments."""
    try:
        elf = ELFFile(io.BytesIO(image))
        return [
            (note["n_name"].encode(), note["n_type"] if isinstance(note["n_type"], int) else 0,
             note["n_descdata"] if isinstance(note["n_descdata"], bytes) else b"")
            for segment in elf.iter_segments()
            if segment["p_type"] == "PT_NOTE"
            for note in segment.iter_notes()  # type: ignore[attr-defined]  # NoteSegment
        ]
    except (ELFError, ConstructError, struct.error, ValueError, UnicodeDecodeError):
        return []


def version_code_of(image: bytes) -> int | None:
    """The LINUX_VERSION_CODE in a vDSO image's ``Linux`` note, or None."""
    for name, n_type, desc in notes(image):
        if name == b"Linux" and n_type == 0 and len(desc) >= 4:
            return int.from_bytes(desc[:4], "little")
    return None


def linux_version_code() -> int | None:
    """The running kernel's LINUX_VERSION_CODE (None where no vDSO says it)."""
    try:
        image = _vdso_bytes()
    except (OSError, ValueError, AttributeError):
        return None
    return version_code_of(image) if image else None


def describe(code: int) -> str:
    """``4.19.255`` for 0x0413ff."""
    return f"{code >> 16}.{(code >> 8) & 0xFF}.{code & 0xFF}"

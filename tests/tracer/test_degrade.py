"""Loading degrades per feature: Go TLS programs the kernel refuses leave syscall capture on.

The refusal is the kernel's own: the test turns the Go TLS uprobe programs
into socket filters before the load, and the verifier rejects them (socket
filters may not call the helpers they use), as an old kernel without what they
need would.  The tracer must load the syscall programs alone, capture, and
say why Go TLS is off.  Also: the kernel's real LINUX_VERSION_CODE is read and
handed to libbpf, which kernels before 5.0 demand for kprobe-type programs.
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import sys

import pytest

from libtrace import Tracer
from libtrace.tracer import _libbpf
from libtrace.tracer.golang.attach import UPROBE_PROGRAMS
from libtrace.tracer.kversion import describe, linux_version_code, notes, version_code_of

from ._spy import calls_of

#: enum bpf_prog_type: BPF_PROG_TYPE_SOCKET_FILTER.
SOCKET_FILTER = 1


def _kernel_code_from_uname() -> int:
    major, minor, patch = (int(part) for part in os.uname().release.split("-")[0].split(".")[:3])
    return major << 16 | minor << 8 | min(patch, 255)


def test_the_vdso_note_is_the_running_kernels_version() -> None:
    code = linux_version_code()

    assert code is not None
    # On an unpatched kernel uname agrees (4.14.y/4.19.y pin the sublevel, so
    # there only major.minor would): the note is the kernel's own number.
    assert code >> 8 == _kernel_code_from_uname() >> 8
    assert describe(code).startswith(".".join(os.uname().release.split(".")[:2]) + ".")


def test_a_note_is_found_in_an_elf_image_built_here() -> None:
    """The reader on a minimal ELF64 with one PT_NOTE holding a ``Linux`` note."""
    import struct

    desc = (0x0413FF).to_bytes(4, "little")
    note = struct.pack("<III", 6, 4, 0) + b"Linux\0\0\0" + desc
    phoff, ehsize, phentsize = 64, 64, 56
    offset = phoff + phentsize
    ehdr = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 3, 62, 1, 0,
                       phoff, 0, 0, ehsize, phentsize, 1, 0, 0, 0)  # fmt: skip
    phdr = struct.pack("<IIQQQQQQ", 4, 4, offset, 0, 0, len(note), len(note), 4)
    image = ehdr + phdr + note

    assert notes(image) == [(b"Linux", 0, desc)]
    assert version_code_of(image) == 0x0413FF
    assert version_code_of(image[:100]) is None  # cut: no note, no crash
    assert version_code_of(b"not an elf") is None


@pytest.mark.root
@pytest.mark.bpf
def test_the_version_is_handed_to_libbpf(monkeypatch: pytest.MonkeyPatch) -> None:
    given = calls_of(monkeypatch, "set_kversion")
    with Tracer(go_tls=False) as tracer:
        assert tracer._object is not None
        kversion = _libbpf.libbpf().bpf_object__kversion
        kversion.restype, kversion.argtypes = ctypes.c_uint, [ctypes.c_void_p]
        loaded_with = kversion(tracer._object._handle)
    assert given == [linux_version_code()] and loaded_with == given[0]


@pytest.mark.root
@pytest.mark.bpf
def test_go_tls_programs_refused_by_the_kernel_leave_syscall_capture_working(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = Tracer._choose_uprobe_links
    set_type = _libbpf.libbpf().bpf_program__set_type
    set_type.restype, set_type.argtypes = ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]

    def refused(self: Tracer, obj: _libbpf.BpfObject) -> bool:
        multi = original(self, obj)
        for name in UPROBE_PROGRAMS:
            assert set_type(obj._prog(name, "force a refusal"), SOCKET_FILTER) == 0
        return multi

    monkeypatch.setattr(Tracer, "_choose_uprobe_links", refused)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        with Tracer(ports=(port,), go_tls=True) as tracer:
            # Another process sends: the tracer never traces its own.
            sender = (f"import socket; s = socket.create_connection(('127.0.0.1', {port})); "
                      "s.sendall(b'still traced'); s.close()")  # fmt: skip
            subprocess.run([sys.executable, "-c", sender], check=True, timeout=30)
            server, _ = listener.accept()
            with server:
                assert server.recv(64) == b"still traced"
            tracer.stop()
            events = list(tracer.events())
    assert tracer.go_tls is None
    assert "go_tls" in tracer.unavailable
    assert any(r.startswith("Go TLS off: its programs did not load") for r in tracer.reasons)
    sent = b"".join(e.data for e in events if e.data and e.direction.name == "EGRESS")
    assert sent == b"still traced"

"""Pure-Python tests of the inspector: no toolchain needed."""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import sys
from pathlib import Path

import pytest

from libtrace.errors import GoBinaryError
from libtrace.tracer.golang import (
    NotElfError,
    NotGoError,
    abi_of,
    call_offsets,
    entry_probe_offset,
    inspect_binary,
    ret_offsets,
)
from libtrace.tracer.golang._buildinfo import _parse_modinfo, _uvarint, version_tuple
from libtrace.tracer.golang._offsets import TABLE, from_table
from libtrace.tracer.golang.cli import add_go_inspect_command


def run_cli(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="libtrace")
    add_go_inspect_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["go-inspect", *argv])
    code = args.handler(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_version_tuple() -> None:
    assert version_tuple("go1.21.13") == (1, 21)
    assert version_tuple("go1.15") == (1, 15)
    assert version_tuple("devel go1.22-abcdef Tue") == (1, 22)
    assert version_tuple("garbage") == (0, 0)


@pytest.mark.parametrize(
    ("machine", "version", "abi"),
    [
        ("EM_X86_64", "go1.15.15", "stack"),
        ("EM_X86_64", "go1.16.3", "stack"),
        ("EM_X86_64", "go1.17", "register"),
        ("EM_X86_64", "go1.27.3", "register"),
        ("EM_AARCH64", "go1.17.1", "stack"),
        ("EM_AARCH64", "go1.18", "register"),
        ("EM_386", "go1.22", "stack"),
    ],
)
def test_abi(machine: str, version: str, abi: str) -> None:
    assert abi_of(machine, version) == abi


def test_ret_offsets_x86() -> None:
    # sub rsp,0x28 ; ret ; nop ; add rsp,0x28 ; ret ; int3 ; ret imm16
    code = bytes.fromhex("4883ec28 c3 90 4883c428 c3 cc c20800")
    assert ret_offsets(code, "EM_X86_64") == (4, 10, 12)


def test_ret_offsets_skip_garbage() -> None:
    # 0x06 is invalid in 64-bit mode; decoding must go on past it.
    assert ret_offsets(bytes.fromhex("06 c3"), "EM_X86_64") == (1,)


def test_ret_offsets_arm64() -> None:
    # mov x0, x1 ; ret
    assert ret_offsets(bytes.fromhex("e00301aa c0035fd6"), "EM_AARCH64") == (4,)


def test_ret_offsets_unknown_arch() -> None:
    with pytest.raises(GoBinaryError):
        ret_offsets(b"\xc3", "EM_MIPS")


@pytest.mark.parametrize(
    ("code", "offset"),
    [
        # Go's register-ABI stack check: CMPQ SP, 16(R14); JBE; PUSHQ BP
        ("493b6610 7605 55", 4),
        # a large frame's: LEAQ -0xb0(SP), R12; CMPQ R12, 16(R14); JBE (near); PUSHQ BP
        ("4c8da42450ffffff 4d3b6610 0f86c1080000 55", 12),
        # no stack check (NOSPLIT with a frame): PUSHQ BP at the entry
        ("55 4889e5", 0),
        # the stack ABI's: MOVQ FS:-8, CX writes CX first: the entry it is
        ("64488b0c25f8ffffff 483b6110 7605", 0),
        # a store before the jump: the entry
        ("48894424f8 7605", 0),
        # an argument register (RAX) written before the jump: the entry
        ("4883c001 7605", 0),
        # a stack pointer change before the jump: the entry
        ("4883ec28 7605", 0),
        # no jump within the prologue's reach: the entry
        ("493b6610 " + "4d89e4" * 8 + " 7605", 0),
    ],
    ids=["small-frame", "large-frame", "nosplit", "stack-abi", "store", "arg-register",
         "stack-pointer", "too-far"],
)
def test_entry_probe_offset_x86(code: str, offset: int) -> None:
    assert entry_probe_offset(bytes.fromhex(code), "EM_X86_64") == offset


def test_entry_probe_offset_elsewhere_is_the_entry() -> None:
    # arm64's prologue (MOVD 16(R28), R16; CMP R16, RSP; BLS) is left at the entry.
    code = bytes.fromhex("900b40f9 ff6330eb 09000054")
    assert entry_probe_offset(code, "EM_AARCH64") == 0


def test_call_offsets_finds_direct_calls_of_the_target_only() -> None:
    # at 0x1000: nop; call 0x2000; call 0x3000; call rax; call 0x2000
    code = bytes.fromhex("90 e8fa0f0000 e8f51f0000 ffd0 e8ee0f0000")
    assert call_offsets(code, "EM_X86_64", 0x1000, 0x2000) == (1, 13)
    assert call_offsets(code, "EM_X86_64", 0x1000, 0x4000) == ()
    assert call_offsets(code, "EM_AARCH64", 0x1000, 0x2000) == ()


def test_uvarint() -> None:
    assert _uvarint(b"\x05", 0) == (5, 1)
    assert _uvarint(b"\xac\x02", 0) == (300, 2)
    with pytest.raises(GoBinaryError):
        _uvarint(b"\x80", 0)


def test_modinfo() -> None:
    sentinel = "0" * 16
    text = (
        f"{sentinel}path\tex.com/a/cmd\nmod\tex.com/a\t(devel)\t\n"
        f'build\t-ldflags="-s -w"\n{sentinel}'
    )
    info = _parse_modinfo("go1.21.13", text)
    assert info.path == "ex.com/a/cmd"
    assert info.module == "ex.com/a"
    assert info.settings == {"-ldflags": "-s -w"}
    assert _parse_modinfo("go1.15", "").module is None


def test_table_nearest_version() -> None:
    offsets, source = from_table("go1.21.13")
    assert source == "table" and offsets == TABLE[(1, 21)]
    offsets, source = from_table("go1.25.1")
    assert source == "table:go1.24" and offsets == TABLE[(1, 24)]
    assert from_table("go1.10") == ({}, "none")


@pytest.mark.parametrize(
    "content",
    [b"", b"hello world, not an ELF file\n", b"MZ\x90\x00" + b"\x00" * 60],
    ids=["empty", "text", "pe"],
)
def test_not_elf(tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "f"
    path.write_bytes(content)
    with pytest.raises(NotElfError):
        inspect_binary(path)
    code, out, err = run_cli(str(path), "--json", capsys=capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "not an ELF file" in err


def test_non_go_elf(capsys: pytest.CaptureFixture[str]) -> None:
    binary = Path(shutil.which("true") or "/bin/true")
    with pytest.raises(NotGoError):
        inspect_binary(binary)
    code, _, err = run_cli(str(binary), capsys=capsys)
    assert code == 2 and "not a Go binary" in err


def test_python_is_not_go(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(sys.executable, capsys=capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(str(tmp_path / "absent"), capsys=capsys)
    assert code == 2 and "cannot open" in err


def test_truncated_elf_header(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "short"
    path.write_bytes(Path(shutil.which("true") or "/bin/true").read_bytes()[:40])
    code, _, err = run_cli(str(path), capsys=capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_garbage_after_elf_magic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "garbage"
    path.write_bytes(b"\x7fELF" + struct.pack("<BBB", 2, 1, 1) + b"\xff" * 500)
    code, _, err = run_cli(str(path), capsys=capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_json_is_not_printed_on_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    _, out, _ = run_cli(str(path), "--json", capsys=capsys)
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def test_newest_debian_version() -> None:
    from libtrace.host.apt import PackageVersion
    from libtrace.host.go_toolchains import _newest

    versions = [
        PackageVersion("golang-1.21-go", v, "s")
        for v in ("1.21.13-1~bpo12+1", "1.21.13-1", "1.21.9-1")
    ]
    assert _newest(versions).version == "1.21.13-1"


def test_toolchain_rejects_bad_version(tmp_path: Path) -> None:
    from libtrace.host.go_toolchains import ToolchainError, toolchain

    with pytest.raises(ToolchainError):
        toolchain("latest", cache_dir=tmp_path)


def test_source_hash_follows_sources(tmp_path: Path) -> None:
    from libtrace.host.go_toolchains import _source_hash

    (tmp_path / "main.go").write_text("package main\n")
    first = _source_hash(tmp_path)
    (tmp_path / "notes.txt").write_text("ignored\n")
    assert _source_hash(tmp_path) == first
    (tmp_path / "main.go").write_text("package main\n\nfunc main() {}\n")
    assert _source_hash(tmp_path) != first

"""objinfo and kernel_features, on objects clang builds from tests/bpf/data.

llvm-objdump is the oracle for what is decoded from the instructions (slots,
helper calls, bpf-to-bpf calls, backward jumps); the sample sources say what
the maps, sections and kernel requirements must be.  libbpf's
bpf_helper_defs.h and the UAPI bpf.h are the oracles for the table's names.
"""

from __future__ import annotations

import io
import itertools
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from libtrace.bpf import kernel_features as kf
from libtrace.bpf.objinfo import (
    BpfObjectFormatError,
    ObjectInfo,
    ProgramInfo,
    check_limits,
    inspect_object,
    min_kernel,
    reachable_subprograms,
)

DATA = Path(__file__).parent / "data"
SAMPLES = (
    "plain", "loop", "cfg", "globals", "ringbuf", "subprog", "nested", "core", "big", "kinds",
)
#: Built name -> (sample, clang target); one big-endian build covers that path.
BUILDS = {**{name: (name, "bpf") for name in SAMPLES}, "nested-bpfeb": ("nested", "bpfeb")}
CLANG = ("clang", "-O2", "-g", "-D__TARGET_ARCH_x86")
HELPER_DEFS = Path("/usr/include/bpf/bpf_helper_defs.h")
UAPI_BPF_H = Path("/usr/include/linux/bpf.h")

needs_toolchain = pytest.mark.skipif(
    shutil.which("clang") is None or shutil.which("llvm-objdump") is None,
    reason="needs clang and llvm-objdump (scripts/install-deps.sh installs them)",
)


# --- Building the samples -------------------------------------------------------

@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("clang") is None:
        pytest.skip("needs clang (scripts/install-deps.sh installs it)")
    out_dir = tmp_path_factory.mktemp("objinfo")
    built = {}
    for name, (sample, target) in BUILDS.items():
        out = out_dir / f"{name}.bpf.o"
        subprocess.run(
            [*CLANG, "-target", target, f"-I{DATA}", "-c", str(DATA / f"{sample}.bpf.c"),
             "-o", str(out)],
            check=True,
        )
        built[name] = out
    return built


@pytest.fixture(scope="module")
def infos(objects: dict[str, Path]) -> dict[str, ObjectInfo]:
    return {name: inspect_object(path) for name, path in objects.items()}


def program(info: ObjectInfo, name: str) -> ProgramInfo:
    return next(p for p in (*info.programs, *info.subprograms) if p.name == name)


# --- The llvm-objdump oracle ---------------------------------------------------------

@dataclass(frozen=True)
class Listed:
    """One function as llvm-objdump lists it."""

    slots: int
    helpers: frozenset[int]
    bpf_calls: int
    backward_jumps: int


_SYMBOL = re.compile(r"^[0-9a-f]+ (?P<flags>.{7}) (?P<section>\S+)\s+[0-9a-f]+ (?P<name>\S+)$")
_HEADER = re.compile(r"^[0-9a-f]+ <(?P<name>[^>]+)>:$")
_INSN = re.compile(r"^\s*\d+:\t(?P<raw>[0-9a-f]{2}(?: [0-9a-f]{2})*)\s+(?P<text>.*)$")
_CALL = re.compile(r"\bcall (-?\d+)")
_BACKWARD = re.compile(r"\bgotol? -\d+")


def objdump(path: Path, big_endian: bool) -> dict[tuple[str, str], Listed]:
    """(section, function) -> what llvm-objdump shows of it."""
    table = subprocess.run(["llvm-objdump", "-t", str(path)],
                           check=True, capture_output=True, text=True).stdout
    functions = set()
    for line in table.splitlines():
        m = _SYMBOL.match(line)
        if m and "F" in m["flags"]:
            functions.add((m["section"], m["name"]))
    listing = subprocess.run(["llvm-objdump", "-d", str(path)],
                             check=True, capture_output=True, text=True).stdout
    insns: dict[tuple[str, str], list[tuple[bytes, str]]] = {}
    section, current = "", None
    for line in listing.splitlines():
        if line.startswith("Disassembly of section "):
            section, current = line.removeprefix("Disassembly of section ").rstrip(":"), None
        elif (m := _HEADER.match(line)) and (section, m["name"]) in functions:
            current = (section, m["name"])  # other headers are labels inside it
            insns[current] = []
        elif (m := _INSN.match(line)) and current is not None:
            insns[current].append((bytes.fromhex(m["raw"]), m["text"]))
    result = {}
    for key, listed in insns.items():
        helpers: set[int] = set()
        bpf_calls = 0
        for raw, text in listed:
            call = _CALL.search(text)
            src = raw[1] & 0x0F if big_endian else raw[1] >> 4
            if call and raw[0] == 0x85:  # BPF_JMP | BPF_CALL
                if src == 0:
                    helpers.add(int(call[1]))
                elif src == 1:
                    bpf_calls += 1
        result[key] = Listed(
            slots=sum(len(raw) // 8 for raw, _ in listed),
            helpers=frozenset(helpers),
            bpf_calls=bpf_calls,
            backward_jumps=sum(1 for _, text in listed if _BACKWARD.search(text)),
        )
    return result


@needs_toolchain
@pytest.mark.parametrize("build", BUILDS)
def test_instructions_match_objdump(
    build: str, objects: dict[str, Path], infos: dict[str, ObjectInfo]
) -> None:
    oracle = objdump(objects[build], big_endian=BUILDS[build][1] == "bpfeb")
    info = infos[build]
    ours = {(p.section, p.name): p for p in (*info.programs, *info.subprograms)}
    assert set(ours) == set(oracle)
    for key, listed in oracle.items():
        got = ours[key]
        assert got.instructions == listed.slots, key
        assert got.helpers == listed.helpers, key
        assert got.bpf_calls == listed.bpf_calls, key
        assert got.backward_jumps == listed.backward_jumps, key
        assert got.helper_names == {kf.helper_name(h) for h in listed.helpers}
        assert got.back_edges <= got.backward_jumps  # every loop jumps backwards


# --- What each sample must need ------------------------------------------------------

def test_plain_tracepoint_loads_on_4_14(infos: dict[str, ObjectInfo]) -> None:
    info = infos["plain"]
    prog = program(info, "on_write")
    assert prog.section == "tracepoint/syscalls/sys_enter_write"
    assert prog.prog_type == "tracepoint"
    assert {"probe_read", "perf_event_output"} <= prog.helper_names
    assert (prog.back_edges, prog.bpf_calls, prog.tail_calls) == (0, 0, False)
    (events,) = info.maps
    assert (events.name, events.type_name, events.key_size, events.value_size) == (
        "events", "perf_event_array", 4, 4)
    assert (info.global_data, info.core_relocations, info.license) == ((), 0, "GPL")
    assert check_limits(info, (4, 14)) == []
    version, reasons = min_kernel(info)
    assert version == (4, 7)
    assert reasons[0] == "program type tracepoint (on_write) needs 4.7"
    assert "helper perf_event_output (id 25) needs 4.4 (on_write)" in reasons
    assert check_limits(info, (4, 6)) == [reasons[0]]


def test_bounded_loop_needs_5_3(infos: dict[str, ObjectInfo]) -> None:
    info = infos["loop"]
    assert program(info, "sum_bytes").back_edges > 0
    assert [r for r in check_limits(info, (4, 14)) if "bounded loops" in r]
    assert all("5.3" in r for r in check_limits(info, (4, 14)))
    assert check_limits(info, (5, 3)) == []
    assert min_kernel(info)[0] == (5, 3)


def test_backward_jump_to_a_shared_exit_is_no_loop(infos: dict[str, ObjectInfo]) -> None:
    info = infos["cfg"]
    shared, loop = program(info, "shared_exit"), program(info, "count_to_four")
    assert (shared.backward_jumps, shared.back_edges) == (1, 0)
    assert (loop.backward_jumps, loop.back_edges) == (1, 1)
    assert check_limits(info, (4, 14)) == [
        "bounded loops (1 back-edge in count_to_four) need 5.3"]


def test_global_data_needs_5_2(infos: dict[str, ObjectInfo]) -> None:
    info = infos["globals"]
    assert {".bss", ".data", ".rodata"} <= set(info.global_data)
    assert [r for r in check_limits(info, (4, 14)) if r.startswith("global data (")]
    assert check_limits(info, (5, 2)) == []


def test_ringbuf_needs_5_8(infos: dict[str, ObjectInfo]) -> None:
    info = infos["ringbuf"]
    assert 130 in program(info, "on_write").helpers
    assert program(info, "on_write").prog_type == "tracepoint"  # SEC("tp/...")
    (rb,) = info.maps
    assert (rb.map_type, rb.type_name, rb.max_entries, rb.key_size) == (27, "ringbuf", 65536, None)
    version, reasons = min_kernel(info)
    assert version == (5, 8)
    assert "helper ringbuf_output (id 130) needs 5.8 (on_write)" in reasons
    assert "map rb of type ringbuf (27) needs 5.8" in reasons
    assert len(check_limits(info, (5, 7))) == 2
    assert check_limits(info, (5, 8)) == []


def test_subprogram_needs_4_16(infos: dict[str, ObjectInfo]) -> None:
    info = infos["subprog"]
    main = program(info, "on_read")
    (mix,) = info.subprograms
    assert (main.bpf_calls, main.calls) == (2, ("mix",))
    assert (mix.name, mix.section, mix.prog_type, mix.helpers) == (
        "mix", ".text", "subprogram", frozenset({7}))
    assert reachable_subprograms(info, main) == (mix,)
    assert min_kernel(info)[0] == (4, 16)
    assert check_limits(info, (4, 14)) == ["bpf-to-bpf calls (2 in on_read) need 4.16"]
    assert check_limits(info, (4, 16)) == []


@pytest.mark.parametrize("build", ["nested", "nested-bpfeb"])
def test_calls_resolve_through_relocations(build: str, infos: dict[str, ObjectInfo]) -> None:
    info = infos[build]
    on_write, on_read = program(info, "on_write"), program(info, "on_read")
    assert set(on_write.calls) == {"leaf", "middle"}  # via .text and via its symbol
    assert program(info, "middle").calls == ("leaf",)  # .text to .text, no relocation
    assert {p.name for p in reachable_subprograms(info, on_write)} == {"leaf", "middle"}
    assert reachable_subprograms(info, on_read) == ()
    # get_current_cgroup_id is called only by leaf, two calls deep.
    version, reasons = min_kernel(info)
    assert version == (4, 18)
    assert reasons[0] == "helper get_current_cgroup_id (id 80) needs 4.18 (on_write)"
    (counts,) = info.maps
    assert (counts.type_name, counts.key_size, counts.value_size, counts.max_entries) == (
        "hash", 4, 8, 128)
    assert info.license == "Dual BSD/GPL"


def test_core_relocations_want_kernel_btf(infos: dict[str, ObjectInfo]) -> None:
    info = infos["core"]
    assert info.core_relocations == 3  # real_parent, tgid, pid
    btf_reason = ("3 CO-RE relocations: needs kernel BTF (5.4+ with CONFIG_DEBUG_INFO_BTF) "
                  "or an external BTF file")
    assert btf_reason in check_limits(info, (5, 3))
    assert btf_reason not in check_limits(info, (5, 4))
    version, reasons = min_kernel(info)  # BTF can come from a file: no minimum
    assert version == (5, 5)  # bpf_probe_read_kernel, which BPF_CORE_READ uses
    assert not [r for r in reasons if "BTF" in r]
    assert check_limits(info, (5, 5)) == []


def test_large_program_needs_5_2(infos: dict[str, ObjectInfo]) -> None:
    info = infos["big"]
    size = program(info, "big").instructions
    assert size > kf.MAX_INSNS_BEFORE_5_2
    assert check_limits(info, (5, 1)) == [
        f"more than 4096 instructions ({size} in big, with its subprograms) needs 5.2"]
    assert check_limits(info, (5, 2)) == []


def test_section_families_tail_calls_and_legacy_maps(infos: dict[str, ObjectInfo]) -> None:
    info = infos["kinds"]
    kinds = {p.name: p.prog_type for p in info.programs}
    assert kinds == {
        "on_open": "kprobe", "on_open_ret": "kretprobe", "on_call": "uprobe",
        "on_raw": "raw_tracepoint", "on_unlink": "fentry", "on_custom": "unknown",
    }
    assert program(info, "on_call").tail_calls
    assert not program(info, "on_open").tail_calls
    maps = {m.name: m for m in info.maps}
    legacy = maps["legacy_counts"]
    assert (legacy.type_name, legacy.key_size, legacy.value_size, legacy.max_entries) == (
        "array", 4, 8, 16)
    assert (maps["jumps"].type_name, maps["jumps"].max_entries) == ("prog_array", 4)
    assert min_kernel(info)[0] == (5, 5)  # fentry
    assert check_limits(info, (4, 17)) == ["program type fentry (on_unlink) needs 5.5"]


@pytest.mark.parametrize(
    ("section", "kind"),
    [
        ("tracepoint/syscalls/sys_enter_write", "tracepoint"),
        ("tp/sched/sched_process_exec", "tracepoint"),
        ("raw_tp/sys_enter", "raw_tracepoint"),
        ("raw_tp.w/sys_enter", "raw_tracepoint_writable"),
        ("kprobe", "kprobe"),
        ("kprobe.multi/tcp_*", "kprobe.multi"),
        ("kprobes/x", "unknown"),
        ("?uprobe//bin/true:main", "uprobe"),
        ("uretprobe.s/lib.so:f", "uretprobe.s"),
        ("usdt/libc.so.6:libc:setjmp", "usdt"),
        ("xdp.frags/devmap", "xdp"),
        ("cgroup/connect4", "cgroup_sock_addr"),
        ("cgroup/sock_create", "cgroup_sock"),
        ("cgroup_skb/ingress", "cgroup_skb"),
        ("tc", "tc"),
        ("socket1", "unknown"),
    ],
)
def test_program_kind(section: str, kind: str) -> None:
    assert kf.program_kind(section) == kind


# --- Tables and limits without clang ---------------------------------------------

def synthetic(helpers: frozenset[int] = frozenset(), instructions: int = 8) -> ObjectInfo:
    prog = ProgramInfo(
        name="p", section="tracepoint/a/b", prog_type="tracepoint", instructions=instructions,
        helpers=helpers, helper_names=frozenset(kf.helper_name(h) for h in helpers),
        back_edges=0, bpf_calls=0, tail_calls=False,
    )
    return ObjectInfo(path="x.o", programs=(prog,), maps=(), global_data=(),
                      core_relocations=0, license="GPL")


def test_unknown_helper_is_at_least_the_newest_known() -> None:
    assert kf.helper_name(9999) == "helper_9999"
    version, reasons = min_kernel(synthetic(frozenset({9999})))
    assert version == kf.newest_known()
    assert reasons[0].startswith("helper helper_9999 (id 9999), newer than libtrace's table,")


def test_program_over_every_limit() -> None:
    reasons = check_limits(synthetic(instructions=2_000_000), (6, 1))
    assert reasons == ["program p has 2000000 instructions with its subprograms, "
                       "more than the 1000000 any kernel accepts"]


def test_empty_object_needs_only_the_baseline() -> None:
    empty = ObjectInfo(path="x.o", programs=(), maps=(), global_data=(),
                       core_relocations=0, license="")
    assert min_kernel(empty) == (kf.EBPF_BASELINE, [])


BRIEF_ROWS = {  # the minimum table the project asked for
    1: (3, 19), 2: (3, 19), 3: (3, 19), 4: (4, 1), 5: (4, 1), 12: (4, 2), 14: (4, 2),
    15: (4, 2), 16: (4, 2), 25: (4, 4), 35: (4, 8), 45: (4, 11), 80: (4, 18),
    112: (5, 5), 113: (5, 5), 114: (5, 5), 115: (5, 5),
    130: (5, 8), 131: (5, 8), 132: (5, 8), 133: (5, 8), 134: (5, 8), 158: (5, 11),
}
BRIEF_MAPS = {1: (3, 19), 2: (3, 19), 3: (4, 2), 4: (4, 3), 5: (4, 6), 6: (4, 6), 9: (4, 10),
              27: (5, 8)}


def test_table_has_the_rows_the_project_needs() -> None:
    assert {i: kf.HELPERS[i].since for i in BRIEF_ROWS} == BRIEF_ROWS
    assert {i: kf.MAP_TYPES[i].since for i in BRIEF_MAPS} == BRIEF_MAPS
    assert (kf.PROGRAM_TYPES["kprobe"], kf.PROGRAM_TYPES["tracepoint"]) == ((4, 1), (4, 7))
    assert (kf.BOUNDED_LOOPS, kf.BPF_TO_BPF_CALLS, kf.GLOBAL_DATA) == ((5, 3), (4, 16), (5, 2))
    assert (kf.LARGE_PROGRAMS, kf.MAX_INSNS_BEFORE_5_2, kf.KERNEL_BTF) == ((5, 2), 4096, (5, 4))


def test_lookups_by_name_agree_with_the_tracers_ids() -> None:
    """The matrix predicts by name what the tracer probes by id (tracer/probe.py)."""
    from libtrace.tracer import _libbpf

    assert kf.map_type_since("ringbuf") == kf.MAP_TYPES[_libbpf.BPF_MAP_TYPE_RINGBUF].since
    for name, helper_id in [("probe_read_user", _libbpf.BPF_FUNC_probe_read_user),
                            ("task_pt_regs", _libbpf.BPF_FUNC_task_pt_regs),
                            ("get_current_task_btf", _libbpf.BPF_FUNC_get_current_task_btf)]:
        assert kf.helper_since(name) == kf.HELPERS[helper_id].since
    with pytest.raises(KeyError):
        kf.helper_since("no_such_helper")
    with pytest.raises(KeyError):
        kf.map_type_since("no_such_map")


@pytest.mark.parametrize("table", [kf.HELPERS, kf.MAP_TYPES], ids=["helpers", "map_types"])
def test_versions_never_decrease_with_the_id(table: dict[int, kf.Helper]) -> None:
    """Both enums grow at the end as features merge, so a row newer than its
    successor is a wrong row."""
    ids = sorted(table)
    assert ids == list(range(1, len(ids) + 1))  # no gaps
    for low, high in itertools.pairwise(ids):
        assert table[low].since <= table[high].since, (table[low], table[high])


def test_every_row_cites_its_commit() -> None:
    source = Path(kf.__file__).read_text()
    rows = [line for line in source.splitlines()
            if re.match(r'\s+(\d+: _[HM]\(|"[a-z_.]+": \(\d+, \d+\),)', line)]
    assert len(rows) > len(kf.HELPERS) + len(kf.MAP_TYPES)
    uncited = [line for line in rows if not re.search(r"# [0-9a-f]{12}\b", line)]
    assert uncited == []


@pytest.mark.skipif(not HELPER_DEFS.exists(), reason="needs libbpf-dev's bpf_helper_defs.h")
def test_helper_names_match_libbpf() -> None:
    defs = dict(
        (int(i), name) for name, i in re.findall(
            r"\(\s*\*\s*(?:const\s+)?bpf_(\w+)\)\(.*\) = \(void \*\) (\d+);",
            HELPER_DEFS.read_text())
    )
    assert defs, "no helper found in bpf_helper_defs.h"
    for helper_id, name in defs.items():
        if helper_id in kf.HELPERS:
            assert kf.HELPERS[helper_id].name == name, helper_id
    assert set(range(1, max(defs) + 1)) <= set(kf.HELPERS)


@pytest.mark.skipif(not UAPI_BPF_H.exists(), reason="needs the UAPI linux/bpf.h")
def test_map_type_names_match_uapi() -> None:
    body = re.search(r"enum bpf_map_type \{(.*?)\};", UAPI_BPF_H.read_text(), flags=re.S)
    assert body
    names = re.findall(r"^\s*BPF_MAP_TYPE_(\w+)", body[1], flags=re.M)
    # The enum is implicitly numbered from UNSPEC = 0; aliases carry "=".
    numbered = [n for n in names if not re.search(rf"BPF_MAP_TYPE_{n}\s*=", body[1])]
    assert len(numbered) > max(BRIEF_MAPS)
    for value, name in enumerate(numbered):
        if value in kf.MAP_TYPES:
            # Newer headers rename CGROUP_STORAGE to ..._DEPRECATED and alias it.
            assert kf.MAP_TYPES[value].name == name.lower().removesuffix("_deprecated"), value


# --- Inputs that are not BPF objects ------------------------------------------------

def assert_clean_error(path: Path) -> BpfObjectFormatError:
    with pytest.raises(BpfObjectFormatError) as caught:
        inspect_object(path)
    error = caught.value
    message = str(error)
    assert "\n" not in message and message.endswith(".")
    assert str(path) in message
    # No pyelftools traceback chained onto ours.
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    return error


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not an object\n")
    assert "is not an ELF file" in str(assert_clean_error(path))


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.o"
    path.write_bytes(b"")
    assert_clean_error(path)


@pytest.mark.skipif(not Path("/bin/true").exists(), reason="needs /bin/true")
def test_host_executable() -> None:
    error = assert_clean_error(Path("/bin/true"))
    assert "not a BPF object" in str(error)


@pytest.mark.parametrize("keep", [4, 20, 63, 64, 300, 0.5, -1])
def test_truncated_object(keep: float, objects: dict[str, Path], tmp_path: Path) -> None:
    data = objects["nested"].read_bytes()
    size = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    path = tmp_path / "truncated.o"
    path.write_bytes(data[:size])
    assert_clean_error(path)


def _section_offsets(data: bytes, name: str) -> tuple[int, int]:
    """(file offset of the section's header, file offset of its data)."""
    elf = ELFFile(io.BytesIO(data))
    index = next(i for i, s in enumerate(elf.iter_sections()) if s.name == name)
    return elf["e_shoff"] + index * elf["e_shentsize"], elf.get_section(index)["sh_offset"]


def test_section_past_the_end(objects: dict[str, Path], tmp_path: Path) -> None:
    data = bytearray(objects["nested"].read_bytes())
    header, _ = _section_offsets(bytes(data), ".BTF")
    struct.pack_into("<Q", data, header + 32, 1 << 40)  # Elf64_Shdr.sh_size
    path = tmp_path / "long_section.o"
    path.write_bytes(data)
    assert "section .BTF ends past the file" in str(assert_clean_error(path))


def test_corrupt_btf(objects: dict[str, Path], tmp_path: Path) -> None:
    data = bytearray(objects["nested"].read_bytes())
    _, btf = _section_offsets(bytes(data), ".BTF")
    struct.pack_into("<I", data, btf + 12, 1 << 30)  # btf_header.type_len
    path = tmp_path / "corrupt_btf.o"
    path.write_bytes(data)
    assert "its .BTF section is truncated" in str(assert_clean_error(path))

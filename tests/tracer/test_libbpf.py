"""The libbpf binding against the real kernel: no mocks.

Every program in data/ping.bpf.c fires only for the pid written into its
``config`` map, so what the buffers deliver is exactly what this test caused.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import struct
import subprocess
import sys
import sysconfig
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from libtrace.errors import BpfError
from libtrace.tracer import _libbpf as lb
from libtrace.tracer import ringbuf

pytestmark = pytest.mark.bpf

SOURCE = Path(__file__).parent / "data" / "ping.bpf.c"
PROGRAMS = ("ping_ringbuf", "ping_perf", "ping_unused", "ping_uprobe")
PING = struct.Struct("<4sIII")  # struct ping: magic, pid, tid, core_tgid
PONG = struct.Struct("<4sIIII")  # struct pong: magic, pid, tid, arg, cpu
ZERO_KEY = bytes(4)
#: getpgid() calls that certainly overflow a one-page perf ring (32-byte records).
FLOOD = 2000
RB_BYTES = 16 * 4096  # as in ping.bpf.c


def u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


def u64(value: int) -> bytes:
    return value.to_bytes(8, "little")


@pytest.fixture(scope="module")
def ping_obj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ping.bpf.c compiled by clang, the way the project builds its objects."""
    if shutil.which("clang") is None:
        pytest.skip("needs clang to build the test BPF object")
    try:
        lb.libbpf()
    except BpfError as exc:
        if exc.errno != errno.ENOENT:
            raise  # a libbpf that is there but lacks what the binding declares: a failure
        pytest.skip(f"needs libbpf.so.1: {exc}")
    out = tmp_path_factory.mktemp("bpf") / "ping.bpf.o"
    cmd = ["clang", "-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", "-I/usr/include"]
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if multiarch:  # Debian keeps <asm/types.h> under /usr/include/<multiarch>
        cmd.append(f"-I/usr/include/{multiarch}")
    subprocess.run([*cmd, "-c", str(SOURCE), "-o", str(out)], check=True)
    return out


@pytest.fixture
def loaded(ping_obj: Path) -> Iterator[lb.BpfObject]:
    """The ping object, loaded and attached, listening to this process."""
    with lb.BpfObject.open(ping_obj) as obj:
        obj.set_autoload("ping_unused", False)
        obj.load()
        obj.map("config").update(ZERO_KEY, u32(os.getpid()))
        obj.attach_all()  # skips the bare SEC("uprobe") program
        yield obj


def test_attach_all_attaches_the_programs_named_first_before_the_others(
    ping_obj: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tracer has the programs that make others forget an fd attached first
    (tracer.FORGETTING_PROGRAMS); the rest keep the object's order."""
    attached: list[str] = []
    monkeypatch.setattr(lb.BpfObject, "attach", lambda _self, name: attached.append(name))
    with lb.BpfObject.open(ping_obj) as obj:
        obj.set_autoload("ping_unused", False)
        obj.load()
        obj.attach_all()
        # ELF order (the bare uprobe is tried too: attach says it has no place)
        assert attached == ["ping_ringbuf", "ping_perf", "ping_uprobe"]
        attached.clear()
        obj.attach_all(first=["ping_perf", "no_such_program", "ping_unused"])
        assert attached == ["ping_perf", "ping_ringbuf", "ping_uprobe"]


def bpftool_prog_names() -> set[str]:
    out = subprocess.run(
        ["bpftool", "-j", "prog", "show"], check=True, capture_output=True, text=True
    ).stdout
    return {prog.get("name", "") for prog in json.loads(out or "[]")}


@pytest.fixture
def one_cpu() -> Iterator[int]:
    """Pin this thread to one CPU, so every perf sample lands in one ring."""
    before = os.sched_getaffinity(0)
    cpu = min(before)
    os.sched_setaffinity(0, {cpu})
    yield cpu
    os.sched_setaffinity(0, before)


def test_import_needs_no_libbpf() -> None:
    code = textwrap.dedent(
        """
        import errno
        from libtrace.tracer import _libbpf
        maps = open("/proc/self/maps").read()
        assert "libbpf" not in maps, "libbpf loaded at import"
        _libbpf.LIBBPF_SONAME = "libbpf-absent.so.99"
        try:
            _libbpf.libbpf()
        except _libbpf.BpfError as exc:
            assert exc.errno == errno.ENOENT and exc.operation == "load libbpf", exc
        else:
            raise AssertionError("no error for a missing libbpf")
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_probes() -> None:
    assert lb.num_possible_cpus() >= (os.cpu_count() or 1)
    assert lb.probe_map_type(lb.BPF_MAP_TYPE_RINGBUF) is True
    assert lb.probe_map_type(lb.BPF_MAP_TYPE_PERF_EVENT_ARRAY) is True
    assert lb.probe_prog_type(lb.BPF_PROG_TYPE_TRACEPOINT) is True
    assert lb.probe_helper(lb.BPF_PROG_TYPE_TRACEPOINT, lb.BPF_FUNC_probe_read_user) is True
    assert lb.probe_helper(lb.BPF_PROG_TYPE_TRACEPOINT, lb.BPF_FUNC_ringbuf_output) is True
    assert lb.probe_map_type(10_000) is False  # unknown to this libbpf


def test_struct_layouts_match_the_c_headers(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("needs a C compiler to read the C layouts")
    checks = {
        "bpf_object_open_opts": lb._OpenOpts,
        "perf_event_attr": lb._PerfEventAttr,
        "bpf_prog_info": lb._ProgInfo,
    }
    lines = []
    for c_name, struct_type in checks.items():
        lines.append(f'printf("{c_name} sizeof %zu\\n", sizeof(struct {c_name}));')
        for field, *_ in struct_type._fields_:
            if not field.startswith("_"):
                lines.append(
                    f'printf("{c_name} {field} %zu\\n", offsetof(struct {c_name}, {field}));'
                )
    src = tmp_path / "layout.c"
    src.write_text(
        "#include <stdio.h>\n#include <stddef.h>\n#include <linux/perf_event.h>\n"
        "#include <bpf/libbpf.h>\nint main(void) {\n" + "\n".join(lines) + "\nreturn 0; }\n"
    )
    subprocess.run([cc, str(src), "-o", str(tmp_path / "layout")], check=True)
    out = subprocess.run([tmp_path / "layout"], check=True, capture_output=True, text=True)
    for line in out.stdout.splitlines():
        c_name, field, value = line.split()
        layout = checks[c_name]
        if field == "sizeof" and layout is lb._ProgInfo:
            continue  # the C struct grows with the kernel; ours stops at recursion_misses
        got = ctypes.sizeof(layout) if field == "sizeof" else getattr(layout, field).offset
        assert got == int(value), line


def test_open_missing_file_is_enoent(tmp_path: Path) -> None:
    with pytest.raises(BpfError) as info:
        lb.BpfObject.open(tmp_path / "absent.bpf.o")
    assert info.value.errno == errno.ENOENT
    assert info.value.operation == f"open BPF object {tmp_path / 'absent.bpf.o'}"


def test_program_names_and_unknown_program(ping_obj: Path) -> None:
    with lb.BpfObject.open(ping_obj) as obj:
        assert obj.program_names() == list(PROGRAMS)
        with pytest.raises(BpfError) as info:
            obj.set_autoload("no_such_prog", False)
        assert info.value.errno == errno.ENOENT


def test_btf_custom_path_reaches_libbpf(ping_obj: Path, tmp_path: Path) -> None:
    with lb.BpfObject.open(ping_obj, btf_custom_path=str(tmp_path / "absent.btf")) as obj:
        with pytest.raises(BpfError) as info:
            obj.load()
        assert info.value.errno == errno.ENOENT
        assert info.value.operation == "load BPF object ping.bpf.o"
        assert "target BTF" in str(info.value)  # libbpf's own words, as the detail
    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("no kernel BTF to relocate against")
    with lb.BpfObject.open(ping_obj, btf_custom_path="/sys/kernel/btf/vmlinux") as obj:
        obj.load()


RingReader = Callable[..., "lb.RingBuffer | ringbuf.MappedRingBuffer"]


@pytest.fixture(params=["libbpf", "mapped"])
def ring_reader(request: pytest.FixtureRequest, loaded: lb.BpfObject) -> RingReader:
    """Both readers of the ring buffer `rb`: libbpf's callbacks, and the mapping read directly."""
    events = loaded.map("rb")
    if request.param == "libbpf":
        return lambda callback, **kw: lb.RingBuffer(events.fd, callback, **kw)
    assert events.max_entries == RB_BYTES
    return lambda callback, **kw: ringbuf.MappedRingBuffer(
        events.fd, events.max_entries, callback, **kw
    )


def test_ringbuf_delivers_exact_bytes(ring_reader: RingReader) -> None:
    records: list[bytes] = []
    with ring_reader(records.append) as rb:
        assert rb.epoll_fd() >= 0
        rb.consume()
        records.clear()
        os.getppid()
        assert rb.poll(1000) == 1
    pid, tid = os.getpid(), threading.get_native_id()
    assert records == [PING.pack(b"PING", pid, tid, pid)]


def test_perf_buffer_delivers_exact_bytes(loaded: lb.BpfObject) -> None:
    samples: list[tuple[int, bytes]] = []
    lost: list[tuple[int, int]] = []
    with lb.PerfBuffer(
        loaded.map("pb").fd,
        8,
        lambda cpu, raw: samples.append((cpu, raw)),
        lambda cpu, n: lost.append((cpu, n)),
    ) as pb:
        assert pb.epoll_fd() >= 0
        os.getpgid(os.getpid())
        assert pb.poll(1000) == 1
    pid, tid = os.getpid(), threading.get_native_id()
    [(cpu, raw)] = samples
    # sizeof(struct pong) + 4 is a multiple of 8, so the kernel added no padding
    assert raw == PONG.pack(b"PONG", pid, tid, pid, cpu)
    assert lost == []


def test_perf_buffer_wakes_its_reader_by_the_bytes_written(
    loaded: lb.BpfObject, one_cpu: int
) -> None:
    # Each sample is 32 bytes in the ring (its header, its size, a 20-byte pong).
    # Below a 64-byte watermark nobody is woken: a poll times out with nothing.
    # Past it the reader is woken, after three samples (a count of samples, as
    # wakeup_events, would wait for 64).
    samples: list[bytes] = []
    with lb.PerfBuffer(
        loaded.map("pb").fd, 8, lambda _cpu, raw: samples.append(raw), lambda _c, _n: None,
        wakeup_bytes=64,
    ) as pb:  # fmt: skip
        os.getpgid(os.getpid())
        assert pb.poll(100) == 0 and samples == []
        for _ in range(3):
            os.getpgid(os.getpid())
        assert pb.poll(1000) == 4
    assert len(samples) == 4


def test_perf_buffer_counts_lost_samples(loaded: lb.BpfObject, one_cpu: int) -> None:
    samples: list[bytes] = []
    lost: list[tuple[int, int]] = []
    with lb.PerfBuffer(
        loaded.map("pb").fd,
        1,
        lambda _cpu, raw: samples.append(raw),
        lambda cpu, n: lost.append((cpu, n)),
    ) as pb:
        for _ in range(FLOOD):  # nobody reads: the one page overflows
            os.getpgid(0)
        pb.consume()
        os.getpgid(0)  # the kernel reports the loss with the next sample that fits
        pb.consume()
    assert lost and all(cpu == one_cpu for cpu, _ in lost)
    total_lost = sum(n for _, n in lost)
    assert total_lost > 0
    assert len(samples) + total_lost == FLOOD + 1  # the loss is counted exactly


def test_ringbuf_records_that_wrap_around_arrive_whole(ring_reader: RingReader) -> None:
    """Several times the ring's size, in batches: records cross its end intact."""
    records: list[bytes] = []
    per_round = RB_BYTES // 24 // 2  # 16-byte records + 8-byte headers: half the ring
    with ring_reader(records.append, max_batch=1000) as rb:
        rb.consume()
        records.clear()
        for _ in range(5):
            for _ in range(per_round):
                os.getppid()
            while rb.consume():
                pass
    pid, tid = os.getpid(), threading.get_native_id()
    assert len(records) == 5 * per_round
    assert set(records) == {PING.pack(b"PING", pid, tid, pid)}


def test_ringbuf_callback_exception_is_reraised(ring_reader: RingReader) -> None:
    seen: list[bytes] = []

    def callback(record: bytes) -> None:
        seen.append(record)
        if len(seen) == 1:
            raise KeyError("from the callback")

    with ring_reader(callback) as rb:
        os.getppid()
        os.getppid()
        with pytest.raises(KeyError, match="from the callback"):
            rb.poll(1000)
        assert rb.consume() == 1  # the record after the failing one was kept
    assert len(seen) == 2


def test_perf_callback_exception_is_reraised(loaded: lb.BpfObject, one_cpu: int) -> None:
    seen: list[bytes] = []

    def callback(_cpu: int, raw: bytes) -> None:
        seen.append(raw)
        if len(seen) == 1:
            raise ValueError("from the callback")

    with lb.PerfBuffer(loaded.map("pb").fd, 8, callback, lambda _c, _n: None) as pb:
        os.getpgid(0)
        os.getpgid(0)
        with pytest.raises(ValueError, match="from the callback"):
            pb.poll(1000)
        assert pb.consume() == 1
    assert len(seen) == 2


def test_hash_map_round_trip(loaded: lb.BpfObject) -> None:
    kv = loaded.map("kv")
    assert (kv.key_size, kv.value_size, kv.map_type) == (4, 8, lb.BPF_MAP_TYPE_HASH)
    assert list(kv.keys()) == []
    kv.update(u32(1), u64(10))
    kv.update(u32(2), u64(20), lb.BPF_NOEXIST)
    with pytest.raises(BpfError) as info:
        kv.update(u32(2), u64(21), lb.BPF_NOEXIST)
    assert info.value.errno == errno.EEXIST
    assert info.value.operation == "update map kv"
    assert kv.lookup(u32(2)) == u64(20)
    assert sorted(kv.keys()) == [u32(1), u32(2)]
    assert kv.delete(u32(1)) is True
    assert kv.delete(u32(1)) is False
    assert kv.lookup(u32(1)) is None
    assert list(kv.keys()) == [u32(2)]
    with pytest.raises(ValueError):
        kv.lookup(b"\0" * 3)
    with pytest.raises(ValueError):
        kv.lookup_percpu(u32(2))


def test_percpu_map(loaded: lb.BpfObject) -> None:
    calls = loaded.map("calls")
    cpus = lb.num_possible_cpus()
    before = sum(int.from_bytes(v, "little") for v in calls.lookup_percpu(ZERO_KEY))
    for _ in range(5):
        os.getppid()
    values = calls.lookup_percpu(ZERO_KEY)
    assert len(values) == cpus and all(len(v) == 8 for v in values)
    assert sum(int.from_bytes(v, "little") for v in values) == before + 5
    calls.update(ZERO_KEY, b"".join(u64(100 + cpu) for cpu in range(cpus)))
    assert calls.lookup_percpu(ZERO_KEY) == [u64(100 + cpu) for cpu in range(cpus)]
    with pytest.raises(ValueError):
        calls.lookup(ZERO_KEY)  # would overflow a one-value buffer


def test_resize_map(ping_obj: Path) -> None:
    with lb.BpfObject.open(ping_obj) as obj:
        obj.resize_map("kv", 2)
        with pytest.raises(BpfError):
            obj.map("kv")  # no fd before load
        obj.load()
        kv = obj.map("kv")
        kv.update(u32(1), u64(1))
        kv.update(u32(2), u64(2))
        with pytest.raises(BpfError) as info:
            kv.update(u32(3), u64(3))
        assert info.value.errno == errno.E2BIG
        with pytest.raises(BpfError):
            obj.resize_map("kv", 4)  # too late: the map exists


def libc_function_offset(name: str) -> tuple[str, int]:
    """Path and file offset of a libc function, from its address in our own mappings."""
    address = ctypes.cast(getattr(ctypes.CDLL("libc.so.6"), name), ctypes.c_void_p).value
    assert address is not None
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if start <= address < end and len(fields) >= 6:
                return fields[5], address - start + int(fields[2], 16)
    raise AssertionError(f"{name} at {address:#x} is in no file mapping")


def test_uprobe_attach_and_detach(loaded: lb.BpfObject) -> None:
    hits = loaded.map("uprobe_hits")
    libc, offset = libc_function_offset("getppid")
    getppid = ctypes.CDLL("libc.so.6").getppid
    loaded.attach_uprobe("ping_uprobe", libc, offset, pid=os.getpid())
    getppid()
    assert hits.lookup(ZERO_KEY) == u64(1)
    loaded.detach("ping_uprobe")
    getppid()
    assert hits.lookup(ZERO_KEY) == u64(1)
    with pytest.raises(BpfError) as info:
        loaded.attach_uprobe("ping_uprobe", "/nonexistent/binary", 0)
    assert info.value.errno == errno.ENOENT
    assert "attach uprobe program ping_uprobe to /nonexistent/binary" in info.value.operation


def test_close_is_idempotent_and_unloads(ping_obj: Path) -> None:
    if shutil.which("bpftool") is None:
        pytest.skip("needs bpftool")
    obj = lb.BpfObject.open(ping_obj)
    obj.set_autoload("ping_unused", False)
    obj.load()
    obj.attach_all()
    assert {"ping_ringbuf", "ping_perf", "ping_uprobe"} <= bpftool_prog_names()
    obj.close()
    obj.close()
    deadline = time.monotonic() + 5  # the kernel frees programs after an RCU grace period
    while set(PROGRAMS) & bpftool_prog_names() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not set(PROGRAMS) & bpftool_prog_names()
    with pytest.raises(BpfError) as info:
        obj.attach("ping_ringbuf")
    assert info.value.errno == errno.EBADF


def test_closed_buffers_refuse_work(loaded: lb.BpfObject) -> None:
    rb = lb.RingBuffer(loaded.map("rb").fd, lambda _r: None)
    rb.close()
    rb.close()
    with pytest.raises(BpfError) as info:
        rb.poll(0)
    assert info.value.errno == errno.EBADF


def test_libbpf_messages_reach_logging(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("DEBUG", logger="libtrace.libbpf"), pytest.raises(BpfError):
        lb.BpfObject.open(tmp_path / "absent.bpf.o")
    assert any(
        r.name == "libtrace.libbpf" and r.levelname == "WARNING" and "absent.bpf.o" in r.message
        for r in caplog.records
    )


def test_recursion_misses_are_the_kernels_count(ping_obj: Path) -> None:
    """A program fired inside itself is skipped; the kernel's count reaches us."""
    out = ping_obj.parent / "recursion.bpf.o"
    cmd = ["clang", "-O2", "-g", "-target", "bpf", "-I/usr/include"]
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if multiarch:
        cmd.append(f"-I/usr/include/{multiarch}")
    subprocess.run([*cmd, "-c", str(SOURCE.with_name("recursion.bpf.c")), "-o", str(out)],
                   check=True)
    calls = 10
    with lb.BpfObject.open(out) as obj:
        obj.load()
        obj.map("config").update(ZERO_KEY, u32(os.getpid()))
        obj.attach_all()
        assert obj.recursion_misses() == 0
        for _ in range(calls):
            os.getppid()
        ours = obj.recursion_misses()
        shown = subprocess.run(["bpftool", "prog", "show", "-j"], check=True,
                               capture_output=True, text=True).stdout
        inner = lb.prog_info(obj.program_fd("inner"))
        assert inner is not None
    kernel = next(p for p in json.loads(shown) if p["id"] == inner.id)
    # bpftool leaves the field out when it is zero (kernels before 5.12, or
    # ones that do not count raw tracepoint recursion).
    assert ours == kernel.get("recursion_misses", 0)
    assert ours in (0, calls)  # each getppid: outer -> inner -> inner (skipped)

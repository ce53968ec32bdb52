"""A thin ctypes binding to the system libbpf (``libbpf.so.1``).

Theory of operation: libbpf does the real work (ELF parsing, CO-RE relocation,
map creation, program loading, attaching from ``SEC()`` names, ring and perf
buffers).  This module declares the C signatures it calls, turns libbpf's
errors into :class:`~libtrace.errors.BpfError`, and owns every kernel object
through a context manager.

* :func:`libbpf` loads the library lazily (never at import), once, with
  ``use_errno=True``; every symbol used gets ``argtypes``/``restype`` and every
  pointer result is ``c_void_p`` (the default ``int`` truncates pointers).
* libbpf 1.x errors: pointer calls return NULL and set ``errno``, int calls
  return ``-errno``.  :func:`_check` and :func:`_check_ptr` are the one place
  that turns either into ``BpfError`` (``PrivilegeError`` for EPERM/EACCES).
* libbpf's messages go through its print callback into the logger
  ``libtrace.libbpf``; the last warnings explain a failed load (the verifier's
  verdict is the tail of its log).
* Buffers call back from C into Python.  A Python exception must not vanish in
  ctypes: the C callback stores the first one, tells libbpf to stop, and
  ``poll()``/``consume()`` re-raise it.  The record whose callback raised
  counts as consumed; later records stay queued for the next call.
* The perf buffer uses ``perf_buffer__new_raw`` with our own
  ``perf_event_attr`` so the reader is woken once ``wakeup_bytes`` were
  written (the attribute's watermark), not on each sample (which throttled a
  writer 95x on this project's test host).

Nothing here is thread-safe: use each object from one thread, and never close
a buffer from inside its own callback.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import platform
import re
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self

from libtrace.errors import BpfError, PrivilegeError

_log = logging.getLogger("libtrace.libbpf")

LIBBPF_SONAME = "libbpf.so.1"

# Constants from linux/bpf.h, linux/perf_event.h and bpf/libbpf.h.
BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK = 0, 1, 2, 4
BPF_RB_NO_WAKEUP, BPF_RB_FORCE_WAKEUP = 1, 2

BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PROG_ARRAY = 3
BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_HASH = 9
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE = 21
BPF_MAP_TYPE_RINGBUF = 27

BPF_PROG_TYPE_KPROBE = 2
BPF_PROG_TYPE_TRACEPOINT = 5
BPF_PROG_TYPE_RAW_TRACEPOINT = 17
BPF_PROG_TYPE_TRACING = 26

BPF_FUNC_probe_read = 4
BPF_FUNC_tail_call = 12
BPF_FUNC_perf_event_output = 25
BPF_FUNC_get_current_task = 35
BPF_FUNC_get_current_cgroup_id = 80
BPF_FUNC_probe_read_user = 112
BPF_FUNC_probe_read_kernel = 113
BPF_FUNC_probe_read_user_str = 114
BPF_FUNC_ringbuf_output = 130
BPF_FUNC_ringbuf_reserve = 131
BPF_FUNC_ringbuf_submit = 132
BPF_FUNC_get_current_task_btf = 158
BPF_FUNC_task_pt_regs = 175
BPF_FUNC_loop = 181

PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_BPF_OUTPUT = 10
PERF_SAMPLE_RAW = 1 << 10
#: perf_event_attr's ``watermark`` bit: wake by bytes (``wakeup_watermark``), not samples
PERF_ATTR_WATERMARK = 1 << 14
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
LIBBPF_PERF_EVENT_DONE, LIBBPF_PERF_EVENT_ERROR, LIBBPF_PERF_EVENT_CONT = 0, -1, -2

_PERCPU_MAP_TYPES = frozenset({5, 6, 10, 21})  # PERCPU_HASH/_ARRAY, LRU_PERCPU_HASH, CGROUP
#: Per-CPU values come in one slot per possible CPU, the value size rounded up to 8.
_PERCPU_SLOT_ALIGN = 8
#: Lines of libbpf warnings kept to explain a failed load (the verifier's verdict).
_DETAIL_LINES = 200
#: sizeof(va_list) on ABIs where it reaches a callback as a pointer we may copy.
_VA_LIST_BYTES = {"x86_64": 24, "amd64": 24, "aarch64": 32, "arm64": 32}


class _OpenOpts(ctypes.Structure):
    """``struct bpf_object_open_opts`` of libbpf 1.1 (80 bytes on 64-bit)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("object_name", ctypes.c_char_p),
        ("relaxed_maps", ctypes.c_bool),
        ("pin_root_path", ctypes.c_char_p),
        ("_removed_attach_prog_fd", ctypes.c_uint32),
        ("kconfig", ctypes.c_char_p),
        ("btf_custom_path", ctypes.c_char_p),
        ("kernel_log_buf", ctypes.c_void_p),
        ("kernel_log_size", ctypes.c_size_t),
        ("kernel_log_level", ctypes.c_uint32),
    ]


class _TestRunOpts(ctypes.Structure):
    """``struct bpf_test_run_opts`` of libbpf 1.1."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


class _ProgInfo(ctypes.Structure):
    """``struct bpf_prog_info`` up to ``recursion_misses`` (5.12).  A kernel
    fills the fields it knows and leaves the rest as we zeroed them, so older
    kernels report no misses.  A test checks the offsets against the C header."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", ctypes.c_uint32),
        ("xlated_prog_len", ctypes.c_uint32),
        ("jited_prog_insns", ctypes.c_uint64),
        ("xlated_prog_insns", ctypes.c_uint64),
        ("load_time", ctypes.c_uint64),
        ("created_by_uid", ctypes.c_uint32),
        ("nr_map_ids", ctypes.c_uint32),
        ("map_ids", ctypes.c_uint64),
        ("name", ctypes.c_char * 16),
        ("ifindex", ctypes.c_uint32),
        ("_gpl_compatible", ctypes.c_uint32),  # a 1-bit field and 31 bits of padding
        ("netns_dev", ctypes.c_uint64),
        ("netns_ino", ctypes.c_uint64),
        ("nr_jited_ksyms", ctypes.c_uint32),
        ("nr_jited_func_lens", ctypes.c_uint32),
        ("jited_ksyms", ctypes.c_uint64),
        ("jited_func_lens", ctypes.c_uint64),
        ("btf_id", ctypes.c_uint32),
        ("func_info_rec_size", ctypes.c_uint32),
        ("func_info", ctypes.c_uint64),
        ("nr_func_info", ctypes.c_uint32),
        ("nr_line_info", ctypes.c_uint32),
        ("line_info", ctypes.c_uint64),
        ("jited_line_info", ctypes.c_uint64),
        ("nr_jited_line_info", ctypes.c_uint32),
        ("line_info_rec_size", ctypes.c_uint32),
        ("jited_line_info_rec_size", ctypes.c_uint32),
        ("nr_prog_tags", ctypes.c_uint32),
        ("prog_tags", ctypes.c_uint64),
        ("run_time_ns", ctypes.c_uint64),
        ("run_cnt", ctypes.c_uint64),
        ("recursion_misses", ctypes.c_uint64),
    ]


def prog_info(fd: int) -> _ProgInfo | None:
    """The kernel's ``bpf_prog_info`` of the program behind ``fd``; None when
    there is none (a negative fd: the program was not loaded)."""
    if fd < 0:
        return None
    info = _ProgInfo()
    size = _U32T(ctypes.sizeof(info))
    if libbpf().bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)) != 0:
        return None
    return info


class _PerfEventAttr(ctypes.Structure):
    """``struct perf_event_attr``, PERF_ATTR_SIZE_VER7 (128 bytes) as in this
    host's linux/perf_event.h.  Only the fields we set are named; the rest
    (breakpoints, registers, aux, sig_data) stay zero, which every kernel
    accepts.  A test checks the offsets against the C header."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("_bits", ctypes.c_uint64),  # the disabled:1, inherit:1, ... bit-fields
        ("wakeup_events", ctypes.c_uint32),  # or wakeup_watermark (a union), by _bits
        ("bp_type", ctypes.c_uint32),
        ("_tail", ctypes.c_uint8 * 72),  # config1 ... sig_data
    ]


_PERF_HEADER = struct.Struct("<IHH")  # struct perf_event_header: type, misc, size
_PERF_SAMPLE_HEAD = struct.Struct("<IHHI")  # perf_event_header, then a sample's u32 size
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")

_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_RB_SAMPLE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
_PB_EVENT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)

_P, _I, _U32T, _S = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_char_p
_B, _SZ = ctypes.c_bool, ctypes.c_size_t
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "libbpf_set_print": (_P, [_PRINT_FN]),
    "libbpf_num_possible_cpus": (_I, []),
    "libbpf_probe_bpf_map_type": (_I, [_I, _P]),
    "libbpf_probe_bpf_prog_type": (_I, [_I, _P]),
    "libbpf_probe_bpf_helper": (_I, [_I, _I, _P]),
    "bpf_object__open_file": (_P, [_S, ctypes.POINTER(_OpenOpts)]),
    "bpf_object__load": (_I, [_P]),
    "bpf_object__close": (None, [_P]),
    "bpf_object__next_program": (_P, [_P, _P]),
    "bpf_object__find_program_by_name": (_P, [_P, _S]),
    "bpf_object__find_map_by_name": (_P, [_P, _S]),
    "bpf_program__name": (_P, [_P]),
    "bpf_object__set_kversion": (_I, [_P, _U32T]),
    "bpf_program__section_name": (_P, [_P]),
    "bpf_program__autoload": (_B, [_P]),
    "bpf_program__set_autoload": (_I, [_P, _B]),
    "bpf_program__set_expected_attach_type": (_I, [_P, _I]),
    "bpf_program__fd": (_I, [_P]),
    "bpf_obj_get_info_by_fd": (_I, [_I, _P, ctypes.POINTER(_U32T)]),
    "bpf_prog_test_run_opts": (_I, [_I, ctypes.POINTER(_TestRunOpts)]),
    "bpf_program__autoattach": (_B, [_P]),
    "bpf_program__attach": (_P, [_P]),
    "bpf_program__attach_uprobe": (_P, [_P, _B, _I, _S, _SZ]),
    "bpf_link__destroy": (_I, [_P]),
    "bpf_map__fd": (_I, [_P]),
    "bpf_map__type": (_I, [_P]),
    "bpf_map__key_size": (_U32T, [_P]),
    "bpf_map__value_size": (_U32T, [_P]),
    "bpf_map__set_max_entries": (_I, [_P, _U32T]),
    "bpf_map__max_entries": (_U32T, [_P]),
    "bpf_map_create": (_I, [_I, _S, _U32T, _U32T, _U32T, _P]),
    "bpf_map_update_elem": (_I, [_I, _P, _P, ctypes.c_uint64]),
    "bpf_map_lookup_elem": (_I, [_I, _P, _P]),
    "bpf_map_delete_elem": (_I, [_I, _P]),
    "bpf_map_get_next_key": (_I, [_I, _P, _P]),
    "ring_buffer__new": (_P, [_I, _RB_SAMPLE_FN, _P, _P]),
    "ring_buffer__poll": (_I, [_P, _I]),
    "ring_buffer__consume": (_I, [_P]),
    "ring_buffer__epoll_fd": (_I, [_P]),
    "ring_buffer__free": (None, [_P]),
    "perf_buffer__new_raw": (_P, [_I, _SZ, ctypes.POINTER(_PerfEventAttr), _PB_EVENT_FN, _P, _P]),
    "perf_buffer__poll": (_I, [_P, _I]),
    "perf_buffer__consume": (_I, [_P]),
    "perf_buffer__epoll_fd": (_I, [_P]),
    "perf_buffer__free": (None, [_P]),
    "perf_buffer__buffer_cnt": (_SZ, [_P]),
}
#: Symbols of newer libbpf versions, declared where present (see :func:`has`).
_OPTIONAL_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    # libbpf 1.0: a perf buffer ring's mapping, for readers of their own.
    "perf_buffer__buffer": (_I, [_P, _I, ctypes.POINTER(_P), ctypes.POINTER(_SZ)]),
}

_load_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_keepalive: list[Any] = []  # libc and the print callback live as long as libbpf
_recent_warnings: deque[str] = deque(maxlen=_DETAIL_LINES)
_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}  # enum libbpf_print_level


def libbpf() -> ctypes.CDLL:
    """Load libbpf once, declare every symbol used, route its messages to logging.

    Raises:
        BpfError: ``ENOENT`` if ``libbpf.so.1`` is missing, ``ENOSYS`` if it
            lacks a symbol this binding needs (libbpf older than 1.0).
    """
    global _lib
    with _load_lock:
        if _lib is None:
            try:
                lib = ctypes.CDLL(LIBBPF_SONAME, use_errno=True)
            except OSError as exc:
                raise _error("load libbpf", errno.ENOENT, str(exc)) from exc
            for name, (restype, argtypes) in _SIGNATURES.items():
                if not hasattr(lib, name):
                    raise _error("load libbpf", errno.ENOSYS, f"{LIBBPF_SONAME} lacks {name}")
                getattr(lib, name).restype = restype
                getattr(lib, name).argtypes = argtypes
            for name, (restype, argtypes) in _OPTIONAL_SIGNATURES.items():
                if hasattr(lib, name):
                    getattr(lib, name).restype = restype
                    getattr(lib, name).argtypes = argtypes
            _install_print(lib)
            _lib = lib
        return _lib


def _install_print(lib: ctypes.CDLL) -> None:
    va_bytes = _VA_LIST_BYTES.get(platform.machine().lower())
    if va_bytes is None:  # va_list layout unknown: libbpf keeps printing to stderr
        return
    vsnprintf = ctypes.CDLL(None).vsnprintf
    vsnprintf.restype = ctypes.c_int
    vsnprintf.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]

    def on_print(level: int, fmt: bytes, va_list: int) -> int:
        py_level = _LEVELS.get(level, logging.DEBUG)
        if py_level < logging.WARNING and not _log.isEnabledFor(py_level):
            return 0
        # vsnprintf consumes a va_list: measure with a copy (va_copy is a plain
        # struct copy on these ABIs), then format from the original.
        copy = ctypes.create_string_buffer(va_bytes)
        ctypes.memmove(copy, va_list, va_bytes)
        buf = ctypes.create_string_buffer(max(vsnprintf(None, 0, fmt, copy), 0) + 1)
        vsnprintf(buf, len(buf), fmt, va_list)
        text = buf.value.decode("utf-8", "replace").rstrip("\n")
        if py_level >= logging.WARNING:
            _recent_warnings.extend(text.splitlines())
        _log.log(py_level, "%s", text)
        return 0

    callback = _PRINT_FN(on_print)
    _keepalive.append(callback)
    lib.libbpf_set_print(callback)


_FAILED_PROG = re.compile(r"prog '(\w+)': failed to load")
#: Verifier log lines that are bookkeeping, not the verdict.
_LOG_NOISE = re.compile(
    r"^(processed \d+ insns|-- (BEGIN|END) PROG LOAD LOG|verification time|"
    r"libbpf: (prog '\w+': (BPF program load failed|failed to load|-- )|failed to load object)|"
    r"stack depth|max_states_per_insn|; |func#|mark_precise|last_idx|regs=|parent )"
)


def verifier_verdict(lines: list[str]) -> str | None:
    """``program P: <instruction> | <message>`` from libbpf's last warnings: the
    verifier's last instruction and what it said of it, which is what a reader
    of a failed load needs (a matrix cell keeps only a line)."""
    program = next((m.group(1) for line in reversed(lines) if (m := _FAILED_PROG.search(line))),
                   None)  # fmt: skip
    log = [line.strip() for line in lines if line.strip() and not _LOG_NOISE.match(line.strip())]
    if not log and program is None:
        return None
    verdict = " | ".join(log[-2:]) if log else "no verifier log"
    return f"program {program}: {verdict}" if program else verdict


def _error(
    operation: str, err: int, detail: str | None = None, *, verifier: bool = False
) -> BpfError:
    """The exception for ``operation`` failing with ``err``.  EPERM/EACCES mean
    missing privileges, except EACCES from a load: that is the verifier's no."""
    if err == errno.EPERM or (err == errno.EACCES and not verifier):
        exc: BpfError = PrivilegeError(operation, err)
    else:
        exc = BpfError(operation, err, detail)
    return exc


def _check(ret: int, operation: str, detail: str | None = None) -> int:
    """Raise for the negative-errno result of an int-returning call."""
    if ret < 0:
        raise _error(operation, -ret, detail)
    return ret


def _check_ptr(ptr: int | None, operation: str, detail: str | None = None) -> int:
    """Raise for the NULL result of a pointer-returning call (errno says why)."""
    if not ptr:
        raise _error(operation, ctypes.get_errno(), detail)
    return ptr


def _cstr(ptr: int | None) -> str:
    return ctypes.string_at(ptr).decode() if ptr else ""


def num_possible_cpus() -> int:
    """Number of possible CPUs: the slot count of per-CPU map values."""
    return _check(libbpf().libbpf_num_possible_cpus(), "count possible CPUs")


def _probe(ret: int, operation: str) -> bool:
    # 1: supported, 0: not, -EOPNOTSUPP: this libbpf cannot probe (nor use) it.
    return False if ret == -errno.EOPNOTSUPP else _check(ret, operation) == 1


def check_bpf_access() -> None:
    """Fail early and clearly when this process may not use BPF at all.

    libbpf's feature probes answer "not supported" when the real reason is a
    missing privilege, which would pick the wrong variant and then fail
    obscurely; creating one tiny map tells the two apart.

    Raises:
        PrivilegeError: EPERM/EACCES (not root, no CAP_BPF).
        BpfError: ENOSYS and others (a kernel without the bpf() syscall).
    """
    fd = libbpf().bpf_map_create(BPF_MAP_TYPE_ARRAY, b"lt_access", 4, 4, 1, None)
    if fd < 0:
        raise _error("create a BPF map", -fd)
    os.close(fd)


def probe_map_type(map_type: int) -> bool:
    """True if the kernel creates maps of ``map_type`` (found by trying)."""
    ret = libbpf().libbpf_probe_bpf_map_type(map_type, None)
    return _probe(ret, f"probe map type {map_type}")


def probe_prog_type(prog_type: int) -> bool:
    """True if the kernel loads programs of ``prog_type`` (found by trying)."""
    ret = libbpf().libbpf_probe_bpf_prog_type(prog_type, None)
    return _probe(ret, f"probe program type {prog_type}")


def probe_helper(prog_type: int, helper_id: int) -> bool:
    """True if programs of ``prog_type`` may call helper ``helper_id``."""
    ret = libbpf().libbpf_probe_bpf_helper(prog_type, helper_id, None)
    return _probe(ret, f"probe helper {helper_id} for program type {prog_type}")


class SyscallRunner:
    """Runs a loaded ``SEC("syscall")`` program (BPF_PROG_RUN, 5.14+) on demand.

    The program reads and writes ``ctx``, which the kernel copies in before
    the run and back after it; the options are built once, since a tracer
    runs its program before every read of the ring.
    """

    def __init__(self, prog_fd: int, name: str, ctx: ctypes.Structure) -> None:
        self.ctx = ctx
        self._fd = prog_fd
        self._operation = f"run program {name}"
        self._opts = _TestRunOpts(
            sz=ctypes.sizeof(_TestRunOpts),
            ctx_in=ctypes.addressof(ctx),
            ctx_size_in=ctypes.sizeof(ctx),
        )
        self._opts_ref = ctypes.byref(self._opts)

    def run(self) -> int:
        """Run the program once; its return value."""
        _check(libbpf().bpf_prog_test_run_opts(self._fd, self._opts_ref), self._operation)
        return int(self._opts.retval)


class BpfMap:
    """A map of a loaded :class:`BpfObject`, which owns the fd.

    Keys and values are raw bytes of exactly the map's sizes (else
    ``ValueError``).  Failures raise ``BpfError`` naming the map.
    """

    def __init__(
        self, name: str, fd: int, key_size: int, value_size: int, map_type: int,
        max_entries: int = 0,
    ) -> None:
        self.name, self.fd, self.map_type = name, fd, map_type
        self.key_size, self.value_size = key_size, value_size
        self.max_entries = max_entries  #: a ring buffer's data size in bytes

    def __repr__(self) -> str:
        return f"BpfMap({self.name!r}, fd={self.fd}, map_type={self.map_type})"

    @property
    def is_percpu(self) -> bool:
        """True for per-CPU maps (one value slot per possible CPU)."""
        return self.map_type in _PERCPU_MAP_TYPES

    def _slot(self) -> int:
        return -(-self.value_size // _PERCPU_SLOT_ALIGN) * _PERCPU_SLOT_ALIGN

    def _key(self, key: bytes) -> bytes:
        if len(key) != self.key_size:
            raise ValueError(f"map {self.name}: key of {len(key)} bytes, not {self.key_size}")
        return key

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        """Set ``key`` to ``value`` (``BPF_ANY``, ``BPF_NOEXIST``, ``BPF_EXIST``).

        For a per-CPU map, ``value`` holds every CPU's slot: the value size
        rounded up to 8, times :func:`num_possible_cpus`.
        """
        size = self._slot() * num_possible_cpus() if self.is_percpu else self.value_size
        if len(value) != size:
            raise ValueError(f"map {self.name}: value of {len(value)} bytes, not {size}")
        ret = libbpf().bpf_map_update_elem(self.fd, self._key(key), value, flags)
        _check(ret, f"update map {self.name}")

    def _lookup(self, key: bytes, size: int) -> bytes | None:
        buf = ctypes.create_string_buffer(size)
        ret = libbpf().bpf_map_lookup_elem(self.fd, self._key(key), buf)
        if ret == -errno.ENOENT:
            return None
        _check(ret, f"look up map {self.name}")
        return buf.raw

    def lookup(self, key: bytes) -> bytes | None:
        """The value at ``key``, or None.  Per-CPU maps need :meth:`lookup_percpu`."""
        if self.is_percpu:  # the kernel would write every CPU's slot past our buffer
            raise ValueError(f"map {self.name} is per-CPU: use lookup_percpu()")
        return self._lookup(key, self.value_size)

    def lookup_percpu(self, key: bytes) -> list[bytes]:
        """Every possible CPU's value at ``key`` (``value_size`` bytes each, in
        CPU order), or ``[]`` if the key is absent."""
        if not self.is_percpu:
            raise ValueError(f"map {self.name} is not per-CPU: use lookup()")
        slot, cpus = self._slot(), num_possible_cpus()
        raw = self._lookup(key, slot * cpus)
        if raw is None:
            return []
        return [raw[i * slot : i * slot + self.value_size] for i in range(cpus)]

    def delete(self, key: bytes) -> bool:
        """Delete ``key``; False if it was absent."""
        ret = libbpf().bpf_map_delete_elem(self.fd, self._key(key))
        if ret == -errno.ENOENT:
            return False
        _check(ret, f"delete from map {self.name}")
        return True

    def keys(self) -> Iterator[bytes]:
        """Iterate over the keys with ``bpf_map_get_next_key``."""
        lib, prev = libbpf(), None
        while True:
            nxt = ctypes.create_string_buffer(self.key_size)
            ret = lib.bpf_map_get_next_key(self.fd, prev, nxt)
            if ret == -errno.ENOENT:
                return
            _check(ret, f"iterate map {self.name}")
            prev = nxt.raw
            yield prev


class BpfObject:
    """A BPF ELF object with its programs, maps and links; create with :meth:`open`.

    Closing it (or leaving its ``with`` block) destroys the links, then the
    programs and maps.  Operations on a closed object raise ``BpfError(EBADF)``.
    """

    def __init__(self, handle: int, name: str) -> None:
        self._handle: int | None = handle
        self._links: dict[str, list[int]] = {}  # per program, so uprobes can go one by one
        self._loaded = False
        self.name = name

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, btf_custom_path: str | None = None) -> Self:
        """Open (parse, not load) the object file at ``path``.

        Args:
            path: a ``.bpf.o`` built by clang.
            btf_custom_path: BTF for CO-RE relocation instead of the kernel's
                own ``/sys/kernel/btf/vmlinux`` (for kernels without BTF).

        Raises:
            BpfError: ``ENOENT`` for a missing file, ``EINVAL`` for a bad one.
        """
        opts = _OpenOpts(sz=ctypes.sizeof(_OpenOpts))
        if btf_custom_path is not None:
            opts.btf_custom_path = os.fsencode(btf_custom_path)  # libbpf copies it
        fspath = os.fspath(path)
        handle = libbpf().bpf_object__open_file(os.fsencode(fspath), ctypes.byref(opts))
        return cls(_check_ptr(handle, f"open BPF object {fspath}"), os.path.basename(fspath))

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else "loaded" if self._loaded else "open"
        return f"<BpfObject {self.name} {state}>"

    def _obj(self, operation: str) -> int:
        if self._handle is None:
            raise _error(operation, errno.EBADF, f"BPF object {self.name} is closed")
        return self._handle

    def _prog(self, name: str, operation: str) -> int:
        ptr = libbpf().bpf_object__find_program_by_name(self._obj(operation), name.encode())
        return _check_ptr(ptr, operation, f"no program {name} in {self.name}")

    def _map_ptr(self, name: str, operation: str) -> int:
        ptr = libbpf().bpf_object__find_map_by_name(self._obj(operation), name.encode())
        return _check_ptr(ptr, operation, f"no map {name} in {self.name}")

    def _programs(self) -> list[int]:
        lib, handle = libbpf(), self._obj(f"list programs of {self.name}")
        progs, prog = [], lib.bpf_object__next_program(handle, None)
        while prog:
            progs.append(prog)
            prog = lib.bpf_object__next_program(handle, prog)
        return progs

    def program_names(self) -> list[str]:
        """Names of all programs in the object, in ELF order."""
        return [_cstr(libbpf().bpf_program__name(prog)) for prog in self._programs()]

    def set_autoload(self, prog_name: str, autoload: bool) -> None:
        """Choose whether :meth:`load` loads ``prog_name`` (before load only)."""
        operation = f"set autoload of program {prog_name}"
        prog = self._prog(prog_name, operation)
        _check(libbpf().bpf_program__set_autoload(prog, autoload), operation)

    def set_kversion(self, code: int) -> None:
        """The ``kern_version`` kprobe-type programs are loaded with (before load only;
        kernels before 5.0 demand their own LINUX_VERSION_CODE)."""
        operation = f"set the kernel version of {self.name}"
        _check(libbpf().bpf_object__set_kversion(self._obj(operation), code), operation)

    def set_expected_attach_type(self, prog_name: str, attach_type: int) -> None:
        """Load ``prog_name`` for ``attach_type`` (call before :meth:`load`)."""
        operation = f"set the attach type of program {prog_name}"
        _check(
            libbpf().bpf_program__set_expected_attach_type(self._prog(prog_name, operation),
                                                           attach_type),
            operation,
        )

    def program_fd(self, prog_name: str) -> int:
        """The fd of loaded program ``prog_name`` (owned by the object)."""
        operation = f"get the fd of program {prog_name}"
        return _check(libbpf().bpf_program__fd(self._prog(prog_name, operation)), operation)

    def syscall_runner(self, prog_name: str, ctx: ctypes.Structure) -> SyscallRunner:
        """A runner of loaded ``SEC("syscall")`` program ``prog_name`` with ``ctx``."""
        return SyscallRunner(self.program_fd(prog_name), prog_name, ctx)

    def recursion_misses(self) -> int:
        """Runs of this object's loaded programs that the kernel skipped.

        A kernel runs one tracing program at a time per CPU and skips (and,
        from 5.12, counts) any that would start while another is active there.
        On kernels whose syscall tracepoints are faultable (Debian's 7.x) a
        program can be preempted, and every other program on its CPU is then
        skipped until it resumes: a syscall whose exit was skipped leaves no
        event and no offset, so its bytes vanish from the stream unseen.
        """
        lib = libbpf()
        infos = (prog_info(lib.bpf_program__fd(prog)) for prog in self._programs())
        return sum(info.recursion_misses for info in infos if info is not None)

    def map(self, name: str) -> BpfMap:
        """The map ``name`` (after :meth:`load`, when it has an fd)."""
        operation = f"find map {name} in {self.name}"
        ptr, lib = self._map_ptr(name, operation), libbpf()
        if not self._loaded:
            raise _error(operation, errno.EINVAL, "load the object first")
        fd = _check(lib.bpf_map__fd(ptr), operation)
        size_k, size_v = lib.bpf_map__key_size(ptr), lib.bpf_map__value_size(ptr)
        return BpfMap(name, fd, size_k, size_v, lib.bpf_map__type(ptr),
                      lib.bpf_map__max_entries(ptr))

    def resize_map(self, name: str, max_entries: int) -> None:
        """Set the ``max_entries`` of map ``name`` (before load only)."""
        operation = f"resize map {name} to {max_entries} entries"
        ptr = self._map_ptr(name, operation)
        _check(libbpf().bpf_map__set_max_entries(ptr, max_entries), operation)

    def load(self) -> None:
        """Create the maps, then load and verify the autoloaded programs.

        Raises:
            BpfError: with the end of libbpf's log (the verifier's verdict) as
                the detail; ``PrivilegeError`` for EPERM.
        """
        operation = f"load BPF object {self.name}"
        handle = self._obj(operation)
        _recent_warnings.clear()
        ret = libbpf().bpf_object__load(handle)
        if ret < 0:
            raise _error(operation, -ret, verifier_verdict(list(_recent_warnings)), verifier=True)
        self._loaded = True

    def attach(self, prog_name: str) -> None:
        """Attach ``prog_name`` where its ``SEC()`` says, keeping the link."""
        prog = self._prog(prog_name, f"attach program {prog_name}")
        section = _cstr(libbpf().bpf_program__section_name(prog))
        link = libbpf().bpf_program__attach(prog)
        self._keep(prog_name, _check_ptr(link, f"attach program {prog_name} ({section})"))

    def attach_all(self, first: Iterable[str] = ()) -> None:
        """Attach every autoloaded program whose ``SEC()`` names its attach point,
        the ones named in ``first`` (where the object has them) before the others.

        Programs libbpf cannot attach by themselves (a bare ``SEC("uprobe")``)
        are skipped, as libbpf's skeletons do; attach those with
        :meth:`attach_uprobe`.
        """
        lib = libbpf()
        early = set(first)
        named = [(_cstr(lib.bpf_program__name(prog)), prog) for prog in self._programs()]
        for name, prog in sorted(named, key=lambda item: item[0] not in early):  # stable
            if not (lib.bpf_program__autoload(prog) and lib.bpf_program__autoattach(prog)):
                continue
            try:
                self.attach(name)
            except BpfError as exc:
                if exc.errno != errno.EOPNOTSUPP:
                    raise
                _log.debug("program %s has no automatic attach point: skipped", name)

    def attach_uprobe(
        self, prog_name: str, binary: str, offset: int, *, pid: int = -1, retprobe: bool = False
    ) -> int:
        """Attach ``prog_name`` as a uprobe at file ``offset`` in ``binary``.

        Args:
            pid: the process to probe; -1 for every process.
            retprobe: probe the function's return instead of its entry.

        Returns:
            The link, for :meth:`release_link` (it is also destroyed with the
            program's other links by :meth:`detach` and :meth:`close`).
        """
        kind = "uretprobe" if retprobe else "uprobe"
        operation = f"attach {kind} program {prog_name} to {binary}+{offset:#x} for pid {pid}"
        prog = self._prog(prog_name, operation)
        link = libbpf().bpf_program__attach_uprobe(prog, retprobe, pid, os.fsencode(binary), offset)
        link = _check_ptr(link, operation)
        self._keep(prog_name, link)
        return link

    def release_link(self, prog_name: str, link: int) -> None:
        """Hand one link of ``prog_name`` over to the caller, who must :func:`destroy_links` it.

        Destroying a uprobe link waits for an RCU grace period (about 0.1 s,
        serialized in the kernel), so a caller with many may do it elsewhere.
        """
        links = self._links.get(prog_name, [])
        if link in links:
            links.remove(link)

    def _keep(self, prog_name: str, link: int) -> None:
        self._links.setdefault(prog_name, []).append(link)

    def detach(self, prog_name: str) -> None:
        """Destroy every link of ``prog_name``; the program stays loaded."""
        operation = f"detach program {prog_name}"
        self._prog(prog_name, operation)  # a typo is an error, not a no-op
        destroy_links(self._links.pop(prog_name, []), operation)

    def detach_all(self) -> None:
        """Destroy every link of every program at once; the programs stay loaded."""
        links, self._links = self._links, {}
        destroy_links([link for ls in links.values() for link in ls], f"detach {self.name}")

    def close(self) -> None:
        """Destroy all links, then the object with its programs and maps.  Idempotent."""
        if self._handle is None:
            return
        handle, links, self._handle, self._links = self._handle, self._links, None, {}
        try:
            destroy_links([link for ls in links.values() for link in ls], f"detach {self.name}")
        finally:
            libbpf().bpf_object__close(handle)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.close()


#: Threads that destroy links at once.  Each detach waits in the kernel for
#: a grace period; ctypes lets go of the GIL meanwhile, and concurrent waits
#: share grace periods: a tracer's 27 tracepoint links go in 1.0 s instead of
#: 2.0 s here (uprobes gain nothing: the kernel frees those one by one).
DESTROY_THREADS = 32


def destroy_links(links: list[int], operation: str = "detach links") -> None:
    """Destroy every link (each is freed even if detaching fails), then raise the first error."""
    destroy = libbpf().bpf_link__destroy
    if len(links) > 1:
        with ThreadPoolExecutor(min(len(links), DESTROY_THREADS)) as pool:
            results = list(pool.map(destroy, links))
    else:
        results = list(map(destroy, links))
    errs = [ret for ret in results if ret < 0]
    if errs:
        raise _error(operation, -errs[0])


class _Buffer:
    """What both buffers share: the libbpf handle (``<_prefix>*`` calls), the
    record count, the pending callback exception, and ``with``."""

    _prefix = ""  # "ring_buffer__" or "perf_buffer__"

    def __init__(self) -> None:
        self._handle: int | None = None
        self._count = 0
        self._pending: BaseException | None = None
        self._batch_full = False

    def _call(self, verb: str, *args: int) -> int:
        """Call ``<_prefix><verb>(handle, *args)``, checked, re-raising a callback's error."""
        operation = f"{self._prefix.strip('_').replace('_', ' ')} {verb.replace('_', ' ')}"
        if self._handle is None:
            raise _error(operation, errno.EBADF, "it is closed")
        self._count = 0
        self._batch_full = False
        ret: int = getattr(libbpf(), self._prefix + verb)(self._handle, *args)
        if self._pending is not None:  # the callback raised: that wins
            exc, self._pending = self._pending, None
            raise exc
        if self._batch_full:  # the callback stopped consumption on purpose
            return self._count
        if ret == -errno.EINTR:  # a signal arrived: return so Python's handler runs
            return 0
        return _check(ret, operation)

    def _failed(self, exc: BaseException) -> None:
        """Keep the first exception a callback raised, for poll()/consume()."""
        if self._pending is None:
            self._pending = exc

    def poll(self, timeout_ms: int) -> int:
        """Wait up to ``timeout_ms`` for records and consume them.

        Returns:
            The number of records handed to the callbacks.

        Raises:
            BaseException: the first exception a callback raised.
            BpfError: if libbpf fails.
        """
        self._call("poll", timeout_ms)
        return self._count

    def consume(self) -> int:
        """Consume the records available now, without waiting; see :meth:`poll`."""
        self._call("consume")
        return self._count

    def epoll_fd(self) -> int:
        """An epoll fd that turns readable when the kernel wakes the reader."""
        return self._call("epoll_fd")

    def close(self) -> None:
        """Free the buffer.  Idempotent."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            getattr(libbpf(), self._prefix + "free")(handle)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.close()


class RingBuffer(_Buffer):
    """Reader of a ``BPF_MAP_TYPE_RINGBUF`` map; ``callback(record)`` per record."""

    _prefix = "ring_buffer__"

    def __init__(
        self, map_fd: int, callback: Callable[[bytes], None], *, max_batch: int = 0
    ) -> None:
        """``max_batch`` > 0 caps the records one :meth:`poll` or :meth:`consume`
        hands over: libbpf keeps consuming as long as the producer keeps
        producing, so without a cap one call may never end under load."""
        super().__init__()
        self._callback = callback
        self._max_batch = max_batch
        self._c_callback = _RB_SAMPLE_FN(self._on_sample)  # libbpf holds it until close
        handle = libbpf().ring_buffer__new(map_fd, self._c_callback, None, None)
        self._handle = _check_ptr(handle, f"open ring buffer on map fd {map_fd}")

    def _on_sample(self, _ctx: int | None, data: int, size: int) -> int:
        try:
            self._callback(ctypes.string_at(data, size))
        except BaseException as exc:
            self._failed(exc)
            return -1  # libbpf stops consuming and returns the error
        self._count += 1
        if self._count == self._max_batch:
            # A negative return stops libbpf after this (consumed) record.
            self._batch_full = True
            return -errno.ECANCELED
        return 0


class PerfBuffer(_Buffer):
    """Reader of a ``BPF_MAP_TYPE_PERF_EVENT_ARRAY`` map, one ring per CPU.

    ``callback(cpu, raw)`` receives each sample's raw bytes as sized by the
    kernel, which pads ``4 + len`` to a multiple of 8: up to 7 bytes of
    undefined padding may follow the payload.  ``lost_callback(cpu, count)``
    receives the kernel's count of samples dropped because that CPU's ring was
    full (the kernel reports it with the next sample that fits).  The reader
    wakes on every sample, or with ``wakeup_bytes`` once a CPU's ring was
    written that many bytes since its last wakeup; the samples after it come
    with :meth:`consume`.  ``page_cnt`` (pages per CPU) is a power of two.
    Records counted by :meth:`poll` include loss notices.
    """

    _prefix = "perf_buffer__"

    def __init__(
        self,
        map_fd: int,
        page_cnt: int,
        callback: Callable[[int, bytes], None],
        lost_callback: Callable[[int, int], None],
        *,
        wakeup_bytes: int = 0,
    ) -> None:
        super().__init__()
        self._callback, self._lost_callback = callback, lost_callback
        self._attr = _PerfEventAttr(
            type=PERF_TYPE_SOFTWARE,
            size=ctypes.sizeof(_PerfEventAttr),
            config=PERF_COUNT_SW_BPF_OUTPUT,
            sample_period=1,
            sample_type=PERF_SAMPLE_RAW,
            # A watermark in bytes, as the ring buffer's: a count of samples
            # would mean many wakeups for small samples and none before the
            # ring is full for large ones.
            _bits=PERF_ATTR_WATERMARK if wakeup_bytes else 0,
            wakeup_events=wakeup_bytes or 1,
        )
        self._c_callback = _PB_EVENT_FN(self._on_event)  # libbpf holds it until close
        attr = ctypes.byref(self._attr)
        handle = libbpf().perf_buffer__new_raw(map_fd, page_cnt, attr, self._c_callback, None, None)
        operation = f"open perf buffer on map fd {map_fd} with {page_cnt} pages per CPU"
        self._handle = _check_ptr(handle, operation)

    def rings(self) -> list[tuple[int, int]] | None:
        """(address, data bytes) of each CPU's ring as mapped (its header page
        first), for a reader of its own; None where libbpf is older than 1.0.
        The mappings live until :meth:`close`."""
        lib = libbpf()
        if self._handle is None:
            raise _error("map the perf buffer's rings", errno.EBADF, "it is closed")
        if not hasattr(lib, "perf_buffer__buffer"):
            return None
        rings = []
        for index in range(lib.perf_buffer__buffer_cnt(self._handle)):
            address, size = ctypes.c_void_p(), ctypes.c_size_t()
            ret = lib.perf_buffer__buffer(
                self._handle, index, ctypes.byref(address), ctypes.byref(size)
            )
            _check(ret, "map the perf buffer's rings")
            rings.append((int(address.value or 0), int(size.value)))
        return rings

    def _on_event(self, _ctx: int | None, cpu: int, event: int) -> int:
        try:
            # One read for the header and the sample's u32 size: this runs per event.
            kind, _misc, size, raw_size = _PERF_SAMPLE_HEAD.unpack(
                ctypes.string_at(event, _PERF_SAMPLE_HEAD.size)
            )
            body = event + _PERF_HEADER.size
            if kind == PERF_RECORD_SAMPLE:  # u32 size, then the raw bytes
                raw_size = min(raw_size, size - _PERF_SAMPLE_HEAD.size)
                self._callback(cpu, ctypes.string_at(event + _PERF_SAMPLE_HEAD.size, raw_size))
            elif kind == PERF_RECORD_LOST:  # u64 id, u64 lost
                (lost,) = _U64.unpack(ctypes.string_at(body + _U64.size, _U64.size))
                self._lost_callback(cpu, lost)
        except BaseException as exc:
            self._failed(exc)
            return LIBBPF_PERF_EVENT_ERROR  # libbpf stops consuming and returns the error
        self._count += 1
        return LIBBPF_PERF_EVENT_CONT

"""A thin ctypes binding to the system libbpf (``libbpf.so.1``).

Theory of operation
-------------------
libbpf does the real work: ELF parsing, CO-RE relocation, map creation,
program loading, attaching from ``SEC()`` names, and the ring/perf buffer
plumbing.  This module only declares the C signatures it calls, turns
libbpf's errors into :class:`~libtrace.errors.BpfError`, and owns every
kernel object through a context manager.

* The library is loaded lazily by :func:`libbpf` (never at import), once,
  with ``use_errno=True``.  Every symbol used gets ``argtypes``/``restype``;
  every pointer result is ``c_void_p`` (the default ``int`` truncates).
* libbpf 1.x error convention: pointer calls return NULL and set ``errno``;
  int calls return ``-errno``.  :func:`_check` and :func:`_check_ptr` are the
  one place that turns either into ``BpfError``/``PrivilegeError``.
* libbpf's messages go through its print callback into the logger
  ``libtrace.libbpf``.  The last warnings are kept so that a failed load can
  say why (the verifier's verdict is the tail of its log).
* Buffers call back into Python from C.  A C callback never lets a Python
  exception escape (ctypes would print and drop it): it stores the first one,
  tells libbpf to stop consuming, and ``poll()``/``consume()`` re-raise it.
  The record whose callback raised counts as consumed; later ones stay queued.
* The perf buffer is opened with ``perf_buffer__new_raw`` and our own
  ``perf_event_attr``, so the reader can be woken every ``wakeup_events``
  samples instead of on each one (which throttled a writer 95x here).

Objects here are not thread-safe; use each from one thread, and never close
a buffer from inside its own callback.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import platform
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Self

from libtrace.errors import BpfError, PrivilegeError

_log = logging.getLogger("libtrace.libbpf")

#: The shared object name of libbpf 1.x.
LIBBPF_SONAME = "libbpf.so.1"

# --- constants (linux/bpf.h, linux/perf_event.h, bpf/libbpf.h) -------------
BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK = 0, 1, 2, 4

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
BPF_FUNC_loop = 181

BPF_RB_NO_WAKEUP, BPF_RB_FORCE_WAKEUP = 1, 2

PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_BPF_OUTPUT = 10
PERF_SAMPLE_RAW = 1 << 10
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9

LIBBPF_PERF_EVENT_DONE, LIBBPF_PERF_EVENT_ERROR, LIBBPF_PERF_EVENT_CONT = 0, -1, -2

_PERCPU_MAP_TYPES = frozenset(
    {
        BPF_MAP_TYPE_PERCPU_HASH,
        BPF_MAP_TYPE_PERCPU_ARRAY,
        BPF_MAP_TYPE_LRU_PERCPU_HASH,
        BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE,
    }
)
#: Per-CPU map values are laid out in slots of the value size rounded up to 8.
_PERCPU_SLOT_ALIGN = 8
#: libbpf warnings remembered to explain a failed load; the verifier's log
#: arrives as one message whose last lines hold its verdict.
_RECENT_WARNINGS = 8
_DETAIL_LINES = 6


# --- C structures and callback types ----------------------------------------
class _OpenOpts(ctypes.Structure):
    """``struct bpf_object_open_opts`` of libbpf 1.1 (80 bytes on x86-64)."""

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


class _PerfEventAttr(ctypes.Structure):
    """``struct perf_event_attr`` as in the installed linux/perf_event.h
    (PERF_ATTR_SIZE_VER7, 128 bytes); newer kernels accept it, and older ones
    accept it too as long as the fields they do not know are zero."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),  # the disabled:1, inherit:1, ... bitfield
        ("wakeup_events", ctypes.c_uint32),
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),
        ("config2", ctypes.c_uint64),
        ("branch_sample_type", ctypes.c_uint64),
        ("sample_regs_user", ctypes.c_uint64),
        ("sample_stack_user", ctypes.c_uint32),
        ("clockid", ctypes.c_int32),
        ("sample_regs_intr", ctypes.c_uint64),
        ("aux_watermark", ctypes.c_uint32),
        ("sample_max_stack", ctypes.c_uint16),
        ("_reserved_2", ctypes.c_uint16),
        ("aux_sample_size", ctypes.c_uint32),
        ("_reserved_3", ctypes.c_uint32),
        ("sig_data", ctypes.c_uint64),
    ]


_PERF_HEADER = struct.Struct("<IHH")  # struct perf_event_header: type, misc, size
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")

_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_RB_SAMPLE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
_PB_EVENT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)

_P, _I, _U = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32
_STR, _BOOL, _SIZE = ctypes.c_char_p, ctypes.c_bool, ctypes.c_size_t
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "libbpf_set_print": (_P, [_PRINT_FN]),
    "libbpf_num_possible_cpus": (_I, []),
    "libbpf_probe_bpf_map_type": (_I, [_I, _P]),
    "libbpf_probe_bpf_prog_type": (_I, [_I, _P]),
    "libbpf_probe_bpf_helper": (_I, [_I, _I, _P]),
    "bpf_object__open_file": (_P, [_STR, ctypes.POINTER(_OpenOpts)]),
    "bpf_object__load": (_I, [_P]),
    "bpf_object__close": (None, [_P]),
    "bpf_object__next_program": (_P, [_P, _P]),
    "bpf_object__find_program_by_name": (_P, [_P, _STR]),
    "bpf_object__find_map_by_name": (_P, [_P, _STR]),
    "bpf_program__name": (_P, [_P]),
    "bpf_program__section_name": (_P, [_P]),
    "bpf_program__autoload": (_BOOL, [_P]),
    "bpf_program__set_autoload": (_I, [_P, _BOOL]),
    "bpf_program__autoattach": (_BOOL, [_P]),
    "bpf_program__attach": (_P, [_P]),
    "bpf_program__attach_uprobe": (_P, [_P, _BOOL, _I, _STR, _SIZE]),
    "bpf_link__destroy": (_I, [_P]),
    "bpf_map__fd": (_I, [_P]),
    "bpf_map__type": (_I, [_P]),
    "bpf_map__key_size": (_U, [_P]),
    "bpf_map__value_size": (_U, [_P]),
    "bpf_map__set_max_entries": (_I, [_P, _U]),
    "bpf_map_update_elem": (_I, [_I, _P, _P, ctypes.c_uint64]),
    "bpf_map_lookup_elem": (_I, [_I, _P, _P]),
    "bpf_map_delete_elem": (_I, [_I, _P]),
    "bpf_map_get_next_key": (_I, [_I, _P, _P]),
    "ring_buffer__new": (_P, [_I, _RB_SAMPLE_FN, _P, _P]),
    "ring_buffer__poll": (_I, [_P, _I]),
    "ring_buffer__consume": (_I, [_P]),
    "ring_buffer__epoll_fd": (_I, [_P]),
    "ring_buffer__free": (None, [_P]),
    "perf_buffer__new_raw": (_P, [_I, _SIZE, ctypes.POINTER(_PerfEventAttr), _PB_EVENT_FN, _P, _P]),
    "perf_buffer__poll": (_I, [_P, _I]),
    "perf_buffer__consume": (_I, [_P]),
    "perf_buffer__epoll_fd": (_I, [_P]),
    "perf_buffer__free": (None, [_P]),
}

# --- loading, logging, errors ------------------------------------------------
_load_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_keepalive: list[Any] = []  # the print callback and libc, alive as long as libbpf
_recent_warnings: deque[str] = deque(maxlen=_RECENT_WARNINGS)
_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}
#: sizeof(va_list) where a va_list argument arrives as a pointer we can copy.
_VA_LIST_BYTES = {"x86_64": 24, "amd64": 24, "aarch64": 32, "arm64": 32}


def libbpf() -> ctypes.CDLL:
    """Load libbpf once and return it with every used symbol declared.

    Also routes libbpf's messages into the ``libtrace.libbpf`` logger.

    Raises:
        BpfError: ``ENOENT`` if ``libbpf.so.1`` is missing, ``ENOSYS`` if it
            lacks a symbol this binding needs.
    """
    global _lib
    with _load_lock:
        if _lib is None:
            try:
                lib = ctypes.CDLL(LIBBPF_SONAME, use_errno=True)
            except OSError as exc:
                raise BpfError("load libbpf", errno.ENOENT, str(exc)) from exc
            for name, (restype, argtypes) in _SIGNATURES.items():
                try:
                    func = getattr(lib, name)
                except AttributeError:
                    raise BpfError("load libbpf", errno.ENOSYS, f"{LIBBPF_SONAME} lacks {name}") from None
                func.restype, func.argtypes = restype, argtypes
            _install_print(lib)
            _lib = lib
        return _lib


def _install_print(lib: ctypes.CDLL) -> None:
    va_bytes = _VA_LIST_BYTES.get(platform.machine().lower())
    if va_bytes is None:  # va_list layout unknown here: leave libbpf on stderr
        return
    libc = ctypes.CDLL(None)
    vsnprintf = libc.vsnprintf
    vsnprintf.restype = ctypes.c_int
    vsnprintf.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]

    def on_print(level: int, fmt: bytes, va_list: int) -> int:
        py_level = _LEVELS.get(level, logging.DEBUG)
        if py_level < logging.WARNING and not _log.isEnabledFor(py_level):
            return 0
        # vsnprintf consumes the va_list: measure on a copy (va_copy is a
        # plain struct copy on these ABIs), then format from the original.
        copy = ctypes.create_string_buffer(va_bytes)
        ctypes.memmove(copy, va_list, va_bytes)
        needed = vsnprintf(None, 0, fmt, copy)
        buf = ctypes.create_string_buffer(max(needed, 0) + 1)
        vsnprintf(buf, len(buf), fmt, va_list)
        text = buf.value.decode("utf-8", "replace").rstrip("\n")
        if py_level >= logging.WARNING:
            _recent_warnings.extend(text.splitlines()[-_DETAIL_LINES:])
        _log.log(py_level, "%s", text)
        return 0

    callback = _PRINT_FN(on_print)
    _keepalive.extend((libc, callback))
    lib.libbpf_set_print(callback)


def _error(operation: str, err: int, detail: str | None = None, *, verifier: bool = False) -> BpfError:
    """The exception for a failed ``operation``; EPERM/EACCES mean privileges,
    except EACCES from a program load, which is the verifier saying no."""
    if err == errno.EPERM or (err == errno.EACCES and not verifier):
        return PrivilegeError(operation, err)
    return BpfError(operation, err, detail)


def _check(ret: int, operation: str, detail: str | None = None) -> int:
    """Raise for a negative-errno result of an int-returning call."""
    if ret < 0:
        raise _error(operation, -ret, detail)
    return ret


def _check_ptr(ptr: int | None, operation: str, detail: str | None = None) -> int:
    """Raise for a NULL result of a pointer-returning call (errno says why)."""
    if not ptr:
        raise _error(operation, ctypes.get_errno(), detail)
    return ptr


def _cstr(ptr: int | None) -> str:
    return ctypes.string_at(ptr).decode() if ptr else ""


# --- feature probes ----------------------------------------------------------
def num_possible_cpus() -> int:
    """Number of possible CPUs: the slot count of per-CPU map values."""
    return _check(libbpf().libbpf_num_possible_cpus(), "count possible CPUs")


def _probe(ret: int, operation: str) -> bool:
    # 1 = supported, 0 = not; -EOPNOTSUPP = this libbpf cannot probe it,
    # which for our purposes means it cannot be used either.
    if ret == -errno.EOPNOTSUPP:
        return False
    return _check(ret, operation) == 1


def probe_map_type(map_type: int) -> bool:
    """True if the kernel can create maps of ``map_type`` (by trying)."""
    return _probe(libbpf().libbpf_probe_bpf_map_type(map_type, None), f"probe map type {map_type}")


def probe_prog_type(prog_type: int) -> bool:
    """True if the kernel can load programs of ``prog_type`` (by trying)."""
    return _probe(libbpf().libbpf_probe_bpf_prog_type(prog_type, None), f"probe program type {prog_type}")


def probe_helper(prog_type: int, helper_id: int) -> bool:
    """True if programs of ``prog_type`` may call helper ``helper_id``."""
    ret = libbpf().libbpf_probe_bpf_helper(prog_type, helper_id, None)
    return _probe(ret, f"probe helper {helper_id} for program type {prog_type}")


# --- maps ----------------------------------------------------------------------
class BpfMap:
    """A map of a loaded :class:`BpfObject`; the object owns the fd."""

    def __init__(self, name: str, fd: int, key_size: int, value_size: int, map_type: int) -> None:
        self.name, self.fd, self.map_type = name, fd, map_type
        self.key_size, self.value_size = key_size, value_size

    def __repr__(self) -> str:
        return f"BpfMap({self.name!r}, fd={self.fd}, type={self.map_type})"

    @property
    def is_percpu(self) -> bool:
        """True for per-CPU maps, whose values have one slot per possible CPU."""
        return self.map_type in _PERCPU_MAP_TYPES

    def _slot(self) -> int:
        return -(-self.value_size // _PERCPU_SLOT_ALIGN) * _PERCPU_SLOT_ALIGN

    def _key(self, key: bytes) -> bytes:
        if len(key) != self.key_size:
            raise ValueError(f"map {self.name}: key is {len(key)} bytes, expected {self.key_size}")
        return key

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        """Set ``key`` to ``value``.  For a per-CPU map, ``value`` holds every
        CPU's slot (value size rounded up to 8, times :func:`num_possible_cpus`).

        Raises:
            BpfError: e.g. ``EEXIST`` with ``BPF_NOEXIST``, ``E2BIG`` when full.
        """
        size = self._slot() * num_possible_cpus() if self.is_percpu else self.value_size
        if len(value) != size:
            raise ValueError(f"map {self.name}: value is {len(value)} bytes, expected {size}")
        ret = libbpf().bpf_map_update_elem(self.fd, self._key(key), value, flags)
        _check(ret, f"update map {self.name}")

    def _lookup_raw(self, key: bytes, size: int) -> bytes | None:
        buf = ctypes.create_string_buffer(size)
        ret = libbpf().bpf_map_lookup_elem(self.fd, self._key(key), buf)
        if ret == -errno.ENOENT:
            return None
        _check(ret, f"look up map {self.name}")
        return buf.raw

    def lookup(self, key: bytes) -> bytes | None:
        """The value at ``key``, or None if there is none."""
        if self.is_percpu:  # the kernel would write one slot per CPU past our buffer
            raise ValueError(f"map {self.name} is per-CPU: use lookup_percpu()")
        return self._lookup_raw(key, self.value_size)

    def lookup_percpu(self, key: bytes) -> list[bytes]:
        """Each possible CPU's value at ``key`` (``value_size`` bytes each),
        or an empty list if there is none."""
        if not self.is_percpu:
            raise ValueError(f"map {self.name} is not per-CPU: use lookup()")
        slot, cpus = self._slot(), num_possible_cpus()
        raw = self._lookup_raw(key, slot * cpus)
        if raw is None:
            return []
        return [raw[i * slot : i * slot + self.value_size] for i in range(cpus)]

    def delete(self, key: bytes) -> bool:
        """Delete ``key``; False if it was not there."""
        ret = libbpf().bpf_map_delete_elem(self.fd, self._key(key))
        if ret == -errno.ENOENT:
            return False
        _check(ret, f"delete from map {self.name}")
        return True

    def keys(self) -> Iterator[bytes]:
        """Iterate over the keys (``bpf_map_get_next_key``)."""
        lib, prev = libbpf(), None
        while True:
            nxt = ctypes.create_string_buffer(self.key_size)
            ret = lib.bpf_map_get_next_key(self.fd, prev, nxt)
            if ret == -errno.ENOENT:
                return
            _check(ret, f"iterate map {self.name}")
            prev = nxt.raw
            yield prev


# --- objects -------------------------------------------------------------------
class BpfObject:
    """A BPF ELF object: its programs, maps and links.  Use :meth:`open`."""

    def __init__(self, handle: int, name: str) -> None:
        self._handle: int | None = handle
        self._links: dict[str, list[int]] = {}
        self._loaded = False
        self.name = name

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, btf_custom_path: str | None = None) -> Self:
        """Open (not load) the object at ``path``.

        Args:
            path: a ``.bpf.o`` built by clang.
            btf_custom_path: BTF to relocate CO-RE against instead of
                ``/sys/kernel/btf/vmlinux`` (for kernels without BTF).

        Raises:
            BpfError: ``ENOENT`` for a missing file, ``EINVAL`` for a bad one.
        """
        opts = _OpenOpts(sz=ctypes.sizeof(_OpenOpts))
        if btf_custom_path is not None:
            opts.btf_custom_path = os.fsencode(btf_custom_path)
        fspath = os.fspath(path)
        handle = libbpf().bpf_object__open_file(os.fsencode(fspath), ctypes.byref(opts))
        return cls(_check_ptr(handle, f"open BPF object {fspath}"), os.path.basename(fspath))

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else "loaded" if self._loaded else "opened"
        return f"<BpfObject {self.name} {state}>"

    def _obj(self, operation: str) -> int:
        if self._handle is None:
            raise BpfError(operation, errno.EBADF, "the BPF object is closed")
        return self._handle

    def _prog(self, name: str, operation: str) -> int:
        ptr = libbpf().bpf_object__find_program_by_name(self._obj(operation), name.encode())
        return _check_ptr(ptr, operation, f"no program {name} in {self.name}")

    def _map_ptr(self, name: str, operation: str) -> int:
        ptr = libbpf().bpf_object__find_map_by_name(self._obj(operation), name.encode())
        return _check_ptr(ptr, operation, f"no map {name} in {self.name}")

    def _programs(self) -> Iterator[int]:
        lib, prog = libbpf(), None
        handle = self._obj(f"list programs of {self.name}")
        while prog := lib.bpf_object__next_program(handle, prog):
            yield prog

    def program_names(self) -> list[str]:
        """Names of all programs in the object, in ELF order."""
        return [_cstr(libbpf().bpf_program__name(p)) for p in self._programs()]

    def set_autoload(self, prog_name: str, autoload: bool) -> None:
        """Choose whether :meth:`load` loads ``prog_name`` (before load only)."""
        operation = f"set autoload of program {prog_name}"
        _check(libbpf().bpf_program__set_autoload(self._prog(prog_name, operation), autoload), operation)

    def map(self, name: str) -> BpfMap:
        """The map ``name`` of the loaded object."""
        operation = f"find map {name} in {self.name}"
        ptr = self._map_ptr(name, operation)
        if not self._loaded:
            raise BpfError(operation, errno.EINVAL, "load the object first")
        lib = libbpf()
        fd = _check(lib.bpf_map__fd(ptr), operation)
        return BpfMap(name, fd, lib.bpf_map__key_size(ptr), lib.bpf_map__value_size(ptr), lib.bpf_map__type(ptr))

    def resize_map(self, name: str, max_entries: int) -> None:
        """Set the map's ``max_entries`` (before load only)."""
        operation = f"resize map {name} to {max_entries}"
        _check(libbpf().bpf_map__set_max_entries(self._map_ptr(name, operation), max_entries), operation)

    def load(self) -> None:
        """Create the maps and load (verify) the autoloaded programs.

        Raises:
            BpfError: with the end of libbpf's log (the verifier's verdict)
                as detail; ``PrivilegeError`` for EPERM.
        """
        operation = f"load BPF object {self.name}"
        handle = self._obj(operation)
        _recent_warnings.clear()
        ret = libbpf().bpf_object__load(handle)
        if ret < 0:
            detail = " | ".join(list(_recent_warnings)[-_DETAIL_LINES:]) or None
            raise _error(operation, -ret, detail, verifier=True)
        self._loaded = True

    def attach(self, prog_name: str) -> None:
        """Attach ``prog_name`` where its ``SEC()`` says; the object keeps the link."""
        prog = self._prog(prog_name, f"attach program {prog_name}")
        section = _cstr(libbpf().bpf_program__section_name(prog))
        link = libbpf().bpf_program__attach(prog)
        link = _check_ptr(link, f"attach program {prog_name} ({section})")
        self._links.setdefault(prog_name, []).append(link)

    def attach_all(self) -> None:
        """Attach every autoloaded, auto-attachable program.

        Programs whose ``SEC()`` cannot be attached automatically (a bare
        ``SEC("uprobe")``) are skipped, as libbpf's skeletons do.
        """
        lib = libbpf()
        for prog in list(self._programs()):
            if not (lib.bpf_program__autoload(prog) and lib.bpf_program__autoattach(prog)):
                continue
            name = _cstr(lib.bpf_program__name(prog))
            try:
                self.attach(name)
            except BpfError as exc:
                if exc.errno != errno.EOPNOTSUPP:
                    raise
                _log.debug("program %s has no automatic attach point, skipped", name)

    def attach_uprobe(
        self, prog_name: str, binary: str, offset: int, *, pid: int = -1, retprobe: bool = False
    ) -> None:
        """Attach ``prog_name`` as a uprobe at file ``offset`` in ``binary``.

        Args:
            pid: the process to probe, or -1 for every process.
            retprobe: probe function return instead of entry.
        """
        kind = "uretprobe" if retprobe else "uprobe"
        operation = f"attach {kind} program {prog_name} to {binary}+{offset:#x} (pid {pid})"
        prog = self._prog(prog_name, operation)
        link = libbpf().bpf_program__attach_uprobe(prog, retprobe, pid, os.fsencode(binary), offset)
        self._links.setdefault(prog_name, []).append(_check_ptr(link, operation))

    def detach(self, prog_name: str) -> None:
        """Destroy every link of ``prog_name`` (the program stays loaded)."""
        operation = f"detach program {prog_name}"
        self._prog(prog_name, operation)
        errs = [-ret for ret in map(libbpf().bpf_link__destroy, self._links.pop(prog_name, [])) if ret < 0]
        if errs:
            raise _error(operation, errs[0])

    def close(self) -> None:
        """Destroy all links, then the object (programs and maps).  Idempotent."""
        if self._handle is None:
            return
        lib, handle = libbpf(), self._handle
        links, self._links, self._handle = self._links, {}, None
        errs = [-ret for ls in links.values() for ret in map(lib.bpf_link__destroy, ls) if ret < 0]
        lib.bpf_object__close(handle)
        if errs:
            raise _error(f"detach programs of {self.name}", errs[0])

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- buffers -------------------------------------------------------------------
class _Buffer:
    """What the two buffers share: the handle, the stored callback exception,
    the context manager."""

    _name = "buffer"

    def __init__(self) -> None:
        self._handle: int | None = None
        self._error: BaseException | None = None

    def _require(self, operation: str) -> int:
        if self._handle is None:
            raise BpfError(operation, errno.EBADF, f"the {self._name} is closed")
        return self._handle

    def _finish(self, ret: int, operation: str) -> int:
        """Re-raise a callback's exception, else check libbpf's result."""
        if self._error is not None:
            exc, self._error = self._error, None
            raise exc
        if ret == -errno.EINTR:  # a signal: let Python's handlers run
            return 0
        return _check(ret, operation)

    def _free(self, handle: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Free the buffer.  Idempotent."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            self._free(handle)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class RingBuffer(_Buffer):
    """Reader of a ``BPF_MAP_TYPE_RINGBUF`` map: ``callback(record_bytes)``."""

    _name = "ring buffer"

    def __init__(self, map_fd: int, callback: Callable[[bytes], None]) -> None:
        super().__init__()
        self._callback = callback
        self._c_callback = _RB_SAMPLE_FN(self._on_sample)  # alive as long as self
        handle = libbpf().ring_buffer__new(map_fd, self._c_callback, None, None)
        self._handle = _check_ptr(handle, f"open ring buffer on map fd {map_fd}")

    def _on_sample(self, _ctx: int | None, data: int, size: int) -> int:
        try:
            self._callback(ctypes.string_at(data, size))
        except BaseException as exc:
            self._error = exc
            return -1
        return 0

    def poll(self, timeout_ms: int) -> int:
        """Wait up to ``timeout_ms`` for records and consume them; returns how many."""
        ret = libbpf().ring_buffer__poll(self._require("poll ring buffer"), timeout_ms)
        return self._finish(ret, "poll ring buffer")

    def consume(self) -> int:
        """Consume every record available now, without waiting; returns how many."""
        ret = libbpf().ring_buffer__consume(self._require("consume ring buffer"))
        return self._finish(ret, "consume ring buffer")

    def epoll_fd(self) -> int:
        """An epoll fd that becomes readable when records arrive."""
        return _check(libbpf().ring_buffer__epoll_fd(self._require("get ring buffer epoll fd")), "get epoll fd")

    def _free(self, handle: int) -> None:
        libbpf().ring_buffer__free(handle)


class PerfBuffer(_Buffer):
    """Reader of a ``BPF_MAP_TYPE_PERF_EVENT_ARRAY`` map, one ring per CPU.

    ``callback(cpu, raw)`` gets each sample's raw bytes exactly as the kernel
    sized them, which may include up to 7 bytes of padding past the payload;
    ``lost_callback(cpu, count)`` gets the kernel's count of dropped samples.
    The reader is woken every ``wakeup_events`` samples; the remainder is
    delivered by :meth:`consume` (or a later wakeup).
    """

    _name = "perf buffer"

    def __init__(
        self,
        map_fd: int,
        page_cnt: int,
        callback: Callable[[int, bytes], None],
        lost_callback: Callable[[int, int], None],
        *,
        wakeup_events: int = 1,
    ) -> None:
        super().__init__()
        self._callback, self._lost_callback = callback, lost_callback
        self._count = 0
        self._attr = _PerfEventAttr(
            type=PERF_TYPE_SOFTWARE,
            size=ctypes.sizeof(_PerfEventAttr),
            config=PERF_COUNT_SW_BPF_OUTPUT,
            sample_period=1,
            sample_type=PERF_SAMPLE_RAW,
            wakeup_events=wakeup_events,
        )
        self._c_callback = _PB_EVENT_FN(self._on_event)  # alive as long as self
        handle = libbpf().perf_buffer__new_raw(
            map_fd, page_cnt, ctypes.byref(self._attr), self._c_callback, None, None
        )
        self._handle = _check_ptr(handle, f"open perf buffer on map fd {map_fd} ({page_cnt} pages per CPU)")

    def _on_event(self, _ctx: int | None, cpu: int, event: int) -> int:
        try:
            kind, _misc, size = _PERF_HEADER.unpack(ctypes.string_at(event, _PERF_HEADER.size))
            body = event + _PERF_HEADER.size
            if kind == PERF_RECORD_SAMPLE:  # u32 size, then the raw bytes
                (raw_size,) = _U32.unpack(ctypes.string_at(body, _U32.size))
                raw_size = min(raw_size, size - _PERF_HEADER.size - _U32.size)
                self._callback(cpu, ctypes.string_at(body + _U32.size, raw_size))
            elif kind == PERF_RECORD_LOST:  # u64 id, u64 lost
                (lost,) = _U64.unpack(ctypes.string_at(body + _U64.size, _U64.size))
                self._lost_callback(cpu, lost)
            self._count += 1
        except BaseException as exc:
            self._error = exc
            return LIBBPF_PERF_EVENT_ERROR
        return LIBBPF_PERF_EVENT_CONT

    def poll(self, timeout_ms: int) -> int:
        """Wait up to ``timeout_ms`` and consume what woke us; returns the
        number of records (samples and loss notices) handled."""
        self._count = 0
        ret = libbpf().perf_buffer__poll(self._require("poll perf buffer"), timeout_ms)
        self._finish(ret, "poll perf buffer")
        return self._count

    def consume(self) -> int:
        """Consume every CPU's records, without waiting; returns how many."""
        self._count = 0
        ret = libbpf().perf_buffer__consume(self._require("consume perf buffer"))
        self._finish(ret, "consume perf buffer")
        return self._count

    def epoll_fd(self) -> int:
        """An epoll fd that becomes readable when a CPU's ring wakes us."""
        return _check(libbpf().perf_buffer__epoll_fd(self._require("get perf buffer epoll fd")), "get epoll fd")

    def _free(self, handle: int) -> None:
        libbpf().perf_buffer__free(handle)

"""A static load prediction: would the tracer load on this kernel?

For a kernel version (and, when known, its build configuration), pick the
variant the tracer's probes would pick on it — from the first mainline
kernel of each feature in libtrace.bpf.kernel_features, and from the config
where it says more (BTF, the bpf() syscall, syscall tracepoints) — then
check that variant's compiled object against the version's limits with
libtrace.bpf.objinfo.  It is the reasoning the tracer does by probing, done
on paper, so a kernel that cannot be booted still gets a checkable answer,
and a booted kernel's verdict can be checked against it.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import lzma
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from ..bpf import kernel_features as features
from ..bpf.build import Variant, object_path
from ..bpf.objinfo import ObjectInfo, check_limits, inspect_object
from ..errors import ConfigError
from ..tracer.probe import with_args_at_exit_only

Version = tuple[int, int]
KernelConfig = dict[str, str]

#: Options without which no variant loads or attaches, and why each matters.
REQUIRED_OPTIONS = {
    "CONFIG_BPF_SYSCALL": "no bpf() syscall",
    "CONFIG_BPF_EVENTS": "BPF programs cannot attach to tracepoints",
    "CONFIG_FTRACE_SYSCALLS": "no syscall tracepoints",
}
_VERSION = re.compile(r"^(\d+)\.(\d+)")


@dataclass(frozen=True, slots=True)
class Prediction:
    version: Version
    variant: Variant
    loads: bool
    reasons: tuple[str, ...]
    #: What the kernel asks of the loader without refusing (kern_version before
    #: 5.0), and what the prediction assumed for lack of a config.
    notes: tuple[str, ...] = ()
    #: Program name → why that program would be refused (only refused ones).
    programs: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def sentence(self) -> str:
        name = features.format_version(self.version)
        if self.loads:
            text = f"{name}: predicted to load the {self.variant.name} object"
        else:
            text = f"{name}: predicted NOT to load {self.variant.name}: " + "; ".join(self.reasons)
        return text + "".join(f"; {note}" for note in self.notes)

    def to_json(self) -> dict[str, object]:
        return {
            "variant": self.variant.name,
            "loads": self.loads,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "programs": {name: list(why) for name, why in self.programs},
        }


def parse_version(text: str) -> Version:
    """``5.10.237``, ``5.10.0-30-amd64`` or ``5.10`` → (5, 10)."""
    match = _VERSION.match(text.strip())
    if not match:
        raise ConfigError(f"{text!r} is not a kernel version")
    return int(match.group(1)), int(match.group(2))


def read_config(path: Path) -> KernelConfig:
    """A kernel .config (plain or gzip, as /proc/config.gz) as option → value."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as text:
            lines = text.read().splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read kernel config {path}: {exc.strerror or exc}") from None
    return _parse_config(lines)


def _parse_config(lines: list[str]) -> KernelConfig:
    config = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key.startswith("CONFIG_"):
            config[key] = value.strip('"')
    return config


def variant_for(version: Version, config: KernelConfig | None = None) -> Variant:
    """What the probes would find on a kernel of this version (and config).

    Without a config, kernel BTF is assumed from the first version that can
    generate it; a kernel built without CONFIG_DEBUG_INFO_BTF loads no-BTF.
    """
    ringbuf = features.map_type_since("ringbuf")
    probe_read_user = features.helper_since("probe_read_user")
    btf = version >= features.KERNEL_BTF
    if config is not None:
        btf = btf and config.get("CONFIG_DEBUG_INFO_BTF") == "y"
    return Variant(ringbuf=version >= ringbuf, probe_read_user=version >= probe_read_user, btf=btf)


@functools.cache
def _object_info(variant: Variant) -> ObjectInfo:
    return inspect_object(object_path(variant))


#: The data syscalls' exits that read their own arguments through
#: bpf_task_pt_regs (and the flush of their batches): the tracer loads them only
#: where the kernel has the helpers they call, and elsewhere the exits that read
#: the kernel stack (BTF objects) or the enter/exit pairs (probe.choose_args_at_exit).
ARGS_AT_EXIT_SINCE = max(
    features.helper_since("task_pt_regs"),
    features.helper_since("get_current_task_btf"),
)


def as_loaded(info: ObjectInfo, version: Version) -> ObjectInfo:
    """The object as the tracer loads it on a kernel of this version."""
    if version >= ARGS_AT_EXIT_SINCE:
        return info
    kept = tuple(p for p in info.programs if not with_args_at_exit_only(p.name))
    return replace(info, programs=kept)


#: SEC() families of kprobe-type programs (uprobes are kprobe programs).
KPROBE_KINDS = frozenset({"kprobe", "kretprobe", "uprobe", "uretprobe", "usdt"})


def _per_program(info: ObjectInfo, version: Version) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Each entry program's own reasons for refusal (maps and data are object-wide)."""
    refused = []
    for program in info.programs:
        alone = replace(info, programs=(program,), maps=(), global_data=(), core_relocations=0)
        why = check_limits(alone, version)
        if why:
            refused.append((program.name, tuple(why)))
    return tuple(refused)


def _notes(info: ObjectInfo, version: Version, config: KernelConfig | None) -> list[str]:
    notes = []
    kprobes = [p.name for p in info.programs if p.prog_type in KPROBE_KINDS]
    if kprobes and version < features.NO_KERN_VERSION_CHECK:
        notes.append(
            f"{len(kprobes)} uprobe programs load only with kern_version = the kernel's own "
            f"LINUX_VERSION_CODE before {features.format_version(features.NO_KERN_VERSION_CHECK)}"
            " (libtrace reads it from the vDSO)"
        )
    if config is None:
        notes.append("no kernel config known: BTF assumed from "
                     f"{features.format_version(features.KERNEL_BTF)} on")  # fmt: skip
    elif config.get("CONFIG_UPROBE_EVENTS") != "y" and kprobes:
        notes.append("Go TLS off: no uprobes (CONFIG_UPROBE_EVENTS is not set); "
                     "syscall capture loads without them")  # fmt: skip
    return notes


def predict(version: Version, config: KernelConfig | None = None) -> Prediction:
    variant = variant_for(version, config)
    info = as_loaded(_object_info(variant), version)
    reasons = check_limits(info, version)
    if config is not None:
        reasons += [
            f"{why} ({option} is not set)"
            for option, why in REQUIRED_OPTIONS.items()
            if config.get(option) != "y"
        ]
    notes = tuple(_notes(info, version, config))
    return Prediction(version, variant, not reasons, tuple(reasons), notes,
                      _per_program(info, version))  # fmt: skip


def config_beside(
    modules: Path | None, release: str, vmlinuz: Path | None = None
) -> KernelConfig | None:
    """The config a kernel ships: ``config-<release>`` beside its image (a
    package's boot/, a built kernel), in ``lib/modules/<release>`` (the split
    packaging), or for the running kernel (no image given) /boot or
    /proc/config.gz."""
    candidates = []
    if vmlinuz is not None:
        candidates.append(vmlinuz.parent / f"config-{release}")
    if modules is not None:
        candidates += [modules.parents[2] / "boot" / f"config-{release}", modules / "config"]
    if vmlinuz is None and modules is None:
        candidates.append(Path(f"/boot/config-{release}"))
        if release == os.uname().release:
            candidates.append(Path("/proc/config.gz"))
    for path in candidates:
        if path.exists():
            return read_config(path)
    if vmlinuz is not None:
        return config_in_image(vmlinuz)
    return None


#: Markers around the gzip'd config that CONFIG_IKCONFIG embeds in the kernel
#: (kernel/configs.c; scripts/extract-ikconfig looks for the same).
IKCFG_START, IKCFG_END = b"IKCFG_ST", b"IKCFG_ED"
#: Decompressed bytes read at most from one compressed stream of an image.
MAX_IMAGE_BYTES = 512 << 20


def _embedded_config(data: bytes) -> KernelConfig | None:
    start = data.find(IKCFG_START)
    if start < 0:
        return None
    end = data.find(IKCFG_END, start)
    try:
        text = gzip.decompress(data[start + len(IKCFG_START) : end if end > 0 else None])
    except (OSError, EOFError, zlib.error):
        return None
    return _parse_config(text.decode("utf-8", "replace").splitlines())


def _streams(image: bytes) -> Iterator[bytes]:
    """The image itself, then each gzip or xz stream in it, decompressed (a
    bzImage holds the kernel as one such stream after its setup code)."""
    yield image
    for magic, make in ((b"\x1f\x8b\x08", lambda: zlib.decompressobj(wbits=31)),
                        (b"\xfd7zXZ\x00", lzma.LZMADecompressor)):  # fmt: skip
        at = image.find(magic)
        while at >= 0:
            with contextlib.suppress(zlib.error, lzma.LZMAError, EOFError):
                yield make().decompress(image[at:], MAX_IMAGE_BYTES)
            at = image.find(magic, at + 1)


def config_in_image(vmlinuz: Path) -> KernelConfig | None:
    """The config a kernel image carries (CONFIG_IKCONFIG), or None."""
    try:
        image = vmlinuz.read_bytes()
    except OSError:
        return None
    for data in _streams(image):
        found = _embedded_config(data)
        if found is not None:
            return found
    return None

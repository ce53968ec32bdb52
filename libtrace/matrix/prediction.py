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

import functools
import gzip
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..bpf import kernel_features as features
from ..bpf.build import Variant, object_path
from ..bpf.objinfo import ObjectInfo, check_limits, inspect_object
from ..errors import ConfigError
from ..tracer import _libbpf

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

    def sentence(self) -> str:
        name = features.format_version(self.version)
        if self.loads:
            return f"{name}: predicted to load the {self.variant.name} object"
        return f"{name}: predicted NOT to load {self.variant.name}: " + "; ".join(self.reasons)

    def to_json(self) -> dict[str, object]:
        return {"variant": self.variant.name, "loads": self.loads, "reasons": list(self.reasons)}


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
    ringbuf = features.MAP_TYPES[_libbpf.BPF_MAP_TYPE_RINGBUF].since
    probe_read_user = features.HELPERS[_libbpf.BPF_FUNC_probe_read_user].since
    btf = version >= features.KERNEL_BTF
    if config is not None:
        btf = btf and config.get("CONFIG_DEBUG_INFO_BTF") == "y"
    return Variant(ringbuf=version >= ringbuf, probe_read_user=version >= probe_read_user, btf=btf)


@functools.cache
def _object_info(variant: Variant) -> ObjectInfo:
    return inspect_object(object_path(variant))


def predict(version: Version, config: KernelConfig | None = None) -> Prediction:
    variant = variant_for(version, config)
    reasons = check_limits(_object_info(variant), version)
    if config is not None:
        reasons += [
            f"{why} ({option} is not set)"
            for option, why in REQUIRED_OPTIONS.items()
            if config.get(option) != "y"
        ]
    return Prediction(version, variant, not reasons, tuple(reasons))


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
    return None

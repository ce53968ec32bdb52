"""A static load prediction for kernels that cannot be booted here.

For a mainline version, pick the variant the tracer's probes would pick on
it (from the first kernel of each feature in libtrace.bpf.kernel_features),
then check that variant's compiled object against the version's limits with
libtrace.bpf.objinfo.  The same reasoning that the tracer does by probing,
done on paper, so an unavailable row says something checkable.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..bpf import kernel_features as features
from ..bpf.build import Variant, object_path
from ..bpf.objinfo import check_limits, inspect_object
from ..tracer import _libbpf

Version = tuple[int, int]


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


def variant_for(version: Version) -> Variant:
    """What the probes would find on a mainline kernel of this version.

    Kernel BTF is assumed from the first version that can generate it; a
    kernel built without CONFIG_DEBUG_INFO_BTF loads the no-BTF object.
    """
    ringbuf = features.MAP_TYPES[_libbpf.BPF_MAP_TYPE_RINGBUF].since
    probe_read_user = features.HELPERS[_libbpf.BPF_FUNC_probe_read_user].since
    return Variant(
        ringbuf=version >= ringbuf,
        probe_read_user=version >= probe_read_user,
        btf=version >= features.KERNEL_BTF,
    )


def predict(version: Version) -> Prediction:
    variant = variant_for(version)
    reasons = check_limits(inspect_object(object_path(variant)), version)
    return Prediction(version, variant, not reasons, tuple(reasons))

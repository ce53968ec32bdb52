"""The catalog's newer series: trixie-backports, sid and experimental kernels,
including the 6.19+ packaging where linux-image-* is a meta package over
linux-binary-*, linux-modules-* and linux-base-*."""

from __future__ import annotations

import pytest

from libtrace.vm import kernels, qemu


def test_the_catalog_knows_every_reachable_series():
    names = kernels.known_kernels()
    for series in ("5.10", "6.1", "6.12", "6.16", "6.17", "6.18", "7.2", "7.3"):
        assert f"debian-{series}" in names


@pytest.mark.qemu
def test_a_split_packaged_7_x_kernel_resolves_and_boots():
    kernel = kernels.resolve("debian-7.3")
    assert kernel.version.startswith("7.3")
    assert kernel.vmlinuz is not None and kernel.vmlinuz.name == "vmlinuz"
    assert kernel.modules is not None and (kernel.modules / "modules.builtin").exists()
    result = qemu.run(kernel, "uname -r > \"$LIBTRACE_RESULTS/uname\"", timeout_s=120)
    assert result.verdict is qemu.Verdict.PASS, result.log_tail

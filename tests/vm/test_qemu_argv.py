"""build_qemu_argv is pure: the argv is checked without starting anything."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from libtrace.errors import VmError
from libtrace.vm import Kernel, VmSpec, _accel, build_qemu_argv, kvm_works, qemu
from libtrace.vm.qemu import trial_boot

KERNEL = Kernel(
    name="debian-6.1",
    release="6.1.0-1-amd64",
    version="6.1.1",
    source="debian:bookworm",
    vmlinuz=Path("/k/vmlinuz-6.1.0-1-amd64"),
    modules=Path("/k/lib/modules/6.1.0-1-amd64"),
)
HOST = Kernel(
    name="host", release="6.18", version="6.18", source="host", vmlinuz=None, modules=None
)


def spec(**overrides: object) -> VmSpec:
    fields: dict[str, object] = {
        "kernel": KERNEL,
        "initrd": Path("/c/initramfs.cpio"),
        "results_dir": Path("/r"),
    }
    fields.update(overrides)
    return VmSpec(**fields)  # type: ignore[arg-type]


def option(argv: list[str], flag: str) -> list[str]:
    """Every value given to ``flag``."""
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


def test_the_argv_boots_the_kernel_and_exits_on_reboot_or_panic() -> None:
    argv = build_qemu_argv(spec())
    assert argv[0] == "qemu-system-x86_64"
    assert "-no-reboot" in argv and "-nographic" in argv
    assert option(argv, "-kernel") == ["/k/vmlinuz-6.1.0-1-amd64"]
    assert option(argv, "-initrd") == ["/c/initramfs.cpio"]
    (append,) = option(argv, "-append")
    params = append.split()
    assert {"console=ttyS0", "panic=-1", "panic_on_warn=0", "printk.time=1"} <= set(params)
    assert "oops=panic" not in params
    assert option(argv, "-serial") == ["stdio"]
    assert option(argv, "-m") == ["1024"] and option(argv, "-smp") == ["1"]


def test_the_argv_shares_the_host_root_read_only_and_the_results_read_write() -> None:
    argv = build_qemu_argv(spec(results_dir=Path("/tmp/res")))
    fsdevs = option(argv, "-fsdev")
    devices = option(argv, "-device")
    hostroot = next(f for f in fsdevs if "id=hostroot" in f)
    results = next(f for f in fsdevs if "id=results" in f)
    assert "path=/," in hostroot and "readonly=on" in hostroot
    assert "path=/tmp/res" in results and "readonly" not in results
    assert "security_model=none" in hostroot and "security_model=none" in results
    assert "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot" in devices
    assert "virtio-9p-pci,fsdev=results,mount_tag=results" in devices


@pytest.mark.parametrize(("accel", "cpu"), [("tcg", "max"), ("kvm", "host")])
def test_the_accelerator_and_its_cpu_model(accel: str, cpu: str) -> None:
    argv = build_qemu_argv(spec(accel=accel))
    assert option(argv, "-accel") == [accel]
    assert option(argv, "-cpu") == [cpu]


def test_sizes_extra_parameters_and_the_boot_image() -> None:
    argv = build_qemu_argv(
        spec(memory_mb=2048, cpus=2, append="nokaslr  ", boot_image=Path("/c/x.vmlinux"))
    )
    assert option(argv, "-m") == ["2048"] and option(argv, "-smp") == ["2"]
    assert option(argv, "-append")[0].endswith(" nokaslr")
    assert option(argv, "-kernel") == ["/c/x.vmlinux"]


def test_the_argv_is_pure_and_repeatable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole argv of the default spec, spelled out: nothing in it comes from the
    machine (its paths do not exist here, and nothing may probe KVM or build an image),
    so every call gives exactly this."""

    def probe(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("build_qemu_argv probed the machine")

    for name in ("kvm_works", "trial_boot", "choose_accel", "build_initramfs", "boot_image"):
        monkeypatch.setattr(qemu, name, probe)
    expected = [
        "qemu-system-x86_64", "-nographic", "-nodefaults", "-no-reboot",
        "-accel", "tcg", "-cpu", "max",
        "-m", "1024", "-smp", "1",
        "-kernel", "/k/vmlinuz-6.1.0-1-amd64",
        "-initrd", "/c/initramfs.cpio",
        "-append", "console=ttyS0 panic=-1 panic_on_warn=0 printk.time=1 "
                   "random.trust_cpu=on rdinit=/init",
        "-serial", "stdio",
        "-monitor", "none",
        "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
        "-fsdev", "local,id=results,path=/r,security_model=none",
        "-device", "virtio-9p-pci,fsdev=results,mount_tag=results",
    ]  # fmt: skip
    assert build_qemu_argv(spec()) == expected
    assert build_qemu_argv(spec()) == expected


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kernel": HOST}, "no image"),
        ({"accel": "hvf"}, "accelerator"),
        ({"memory_mb": 64}, "128 MiB"),
        ({"cpus": 0}, "one CPU"),
    ],
)
def test_impossible_specs_raise_vm_error(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(VmError, match=message):
        build_qemu_argv(spec(**overrides))


@pytest.mark.qemu
def test_the_trial_boot_works_under_tcg() -> None:
    assert trial_boot("tcg", timeout_s=20)


class _KvmDeviceOpen:
    """``os`` for libtrace.vm._accel, but /dev/kvm is always accessible."""

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    @staticmethod
    def access(_path: str, _mode: int) -> bool:
        return True


@pytest.mark.qemu
def test_kvm_works_answers_and_caches_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    first = kvm_works()
    assert isinstance(first, bool)
    # From now on /dev/kvm is there and a new trial boot would answer the opposite:
    # the cached answer is given, and no trial boot runs.
    trials: list[str] = []

    def trial(accel: str, timeout_s: float = 10) -> bool:
        trials.append(accel)
        return not first

    monkeypatch.setattr(_accel, "os", _KvmDeviceOpen())
    monkeypatch.setattr(_accel, "trial_boot", trial)
    assert kvm_works() is first
    assert trials == []


def test_a_comma_in_the_results_path_is_escaped() -> None:
    fsdevs = option(build_qemu_argv(spec(results_dir=Path("/r/a,b"))), "-fsdev")
    assert "local,id=results,path=/r/a,,b,security_model=none" in fsdevs

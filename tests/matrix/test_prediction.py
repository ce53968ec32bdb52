"""Predictions checked against reality: a booted kernel does what was predicted.

The matrix compares its prediction with every booted row (test_sweep.py);
here an object built to be incompatible is predicted not to load on 5.10,
and a real 5.10 guest refuses it while the host loads it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from libtrace.bpf.objinfo import check_limits, inspect_object
from libtrace.matrix.prediction import parse_version, predict, read_config, variant_for
from libtrace.vm import kernels, qemu

DATA = Path(__file__).parents[1] / "bpf" / "data"
CLI = [sys.executable, "-m", "libtrace.cli"]


@pytest.fixture(scope="module")
def too_new(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Outside /tmp's pytest dirs the guest sees it too (the host root is shared).
    out = tmp_path_factory.mktemp("too_new") / "too_new.bpf.o"
    subprocess.run(
        [
            "clang",
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-D__TARGET_ARCH_x86",
            f"-I{DATA}",
            "-c",
            str(DATA / "too_new.bpf.c"),
            "-o",
            str(out),
        ],
        check=True,
    )
    return out


LOAD = (
    "from libtrace.tracer._libbpf import BpfObject; import sys; "
    "o = BpfObject.open(sys.argv[1]); o.load(); print('LOADED')"
)


def test_the_incompatible_object_is_predicted_not_to_load_on_5_10(too_new):
    info = inspect_object(too_new)
    reasons = check_limits(info, (5, 10))
    assert any("get_current_task_btf" in reason and "5.11" in reason for reason in reasons)
    assert check_limits(info, (5, 11)) == []


@pytest.mark.root
@pytest.mark.bpf
def test_the_incompatible_object_loads_on_the_host(too_new):
    proc = subprocess.run(
        [sys.executable, "-c", LOAD, str(too_new)], capture_output=True, text=True, timeout=60
    )
    assert "LOADED" in proc.stdout, proc.stderr


@pytest.mark.root
@pytest.mark.qemu
def test_a_5_10_guest_really_refuses_the_incompatible_object(too_new):
    kernel = kernels.resolve("debian-5.10")
    repo = Path(__file__).parents[2]
    result = qemu.run(
        kernel, f'{sys.executable} -c "{LOAD}" {too_new}', timeout_s=120, cwd=str(repo)
    )
    assert result.verdict is qemu.Verdict.FAIL, result.log_tail
    assert "LOADED" not in result.log_tail
    assert "load BPF object" in result.log_tail or "failed" in result.log_tail


def test_variant_choice_follows_the_feature_table_and_the_config(tmp_path):
    assert variant_for((4, 14)).name == "perfbuf+probe-read+no-btf"
    assert variant_for((5, 5)).name == "perfbuf+probe-read-user+btf"
    assert variant_for((5, 8)).name == "ringbuf+probe-read-user+btf"
    config = tmp_path / "config"
    config.write_text(
        "CONFIG_BPF_SYSCALL=y\nCONFIG_BPF_EVENTS=y\n# CONFIG_DEBUG_INFO_BTF is not set\n"
    )
    parsed = read_config(config)
    assert variant_for((5, 10), parsed).name == "ringbuf+probe-read-user+no-btf"
    prediction = predict((5, 10), parsed)
    assert not prediction.loads
    assert prediction.reasons == ("no syscall tracepoints (CONFIG_FTRACE_SYSCALLS is not set)",)
    assert parse_version("5.10.0-30-amd64") == (5, 10)


def test_compat_contract_for_the_seed_list():
    proc = subprocess.run([*CLI, "compat", "--json"], capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["kernel"] for r in rows][:2] == ["4.14", "4.15"] and len(
        rows
    ) == 25  # 24 series and the host
    for row in rows:
        assert set(row) == {"kernel", "variant", "loads", "reasons", "notes", "programs", "source"}
        assert row["source"] == "predicted"
    assert rows[0]["variant"] == "perfbuf+probe-read+no-btf" and rows[0]["loads"]


def test_compat_for_a_kernel_package_reads_its_config():
    kernel = kernels.resolve("debian-6.1")
    root = kernel.modules.parents[2]
    proc = subprocess.run(
        [*CLI, "compat", "--kernel", str(root), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    row = json.loads(proc.stdout)
    assert row["variant"] == "ringbuf+probe-read-user+btf" and row["loads"]


def test_compat_bad_input_is_one_line_and_exit_2():
    proc = subprocess.run([*CLI, "compat", "--kernel", "banana"], capture_output=True, text=True)
    assert proc.returncode == 2 and "neither a catalog name" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.qemu
def test_a_kernel_built_without_btf_is_predicted_to_load_the_no_btf_object():
    from libtrace.vm.build import BuildRequest, build_kernel

    build_kernel(BuildRequest(source="5.10", disable=("btf",)))  # cached after the first time
    proc = subprocess.run(
        [*CLI, "compat", "--kernel", "5.10-nobtf", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(proc.stdout)["variant"] == "ringbuf+probe-read-user+no-btf"


def test_old_kernels_are_told_the_kern_version_rule_and_the_btf_assumption():
    before_5_0, after = predict((4, 19)), predict((5, 4))

    assert before_5_0.loads and after.loads
    assert any("kern_version" in note for note in before_5_0.notes)
    assert not any("kern_version" in note for note in after.notes)
    assert any("BTF assumed" in note for note in after.notes)  # no config given


def test_refusals_are_named_program_by_program():
    refused = predict((4, 6))  # tracepoint programs came in 4.7

    assert not refused.loads
    programs = dict(refused.programs)
    assert programs, refused.reasons
    for name, why in programs.items():
        assert name.startswith("lt_") and why
    assert refused.to_json()["programs"] == {k: list(v) for k, v in programs.items()}


def test_the_config_embedded_in_a_compressed_image_is_read(tmp_path):
    """CONFIG_IKCONFIG: a gzip'd config between markers, inside the gzip'd kernel of a bzImage."""
    import gzip

    from libtrace.matrix.prediction import config_beside, config_in_image

    config = "CONFIG_DEBUG_INFO_BTF=y\nCONFIG_BPF_SYSCALL=y\n# CONFIG_PVH is not set\n"
    vmlinux = b"\0" * 4096 + b"IKCFG_ST" + gzip.compress(config.encode()) + b"IKCFG_ED" + b"\0" * 64
    image = tmp_path / "bzImage"
    image.write_bytes(b"MZ setup code" + bytes(1000) + gzip.compress(vmlinux) + bytes(100))

    found = config_in_image(image)
    assert found == {"CONFIG_DEBUG_INFO_BTF": "y", "CONFIG_BPF_SYSCALL": "y"}
    assert config_beside(None, "9.9.9", image) == found  # no config file beside it
    plain = tmp_path / "plain"
    plain.write_bytes(b"no config here" + gzip.compress(b"nothing"))
    assert config_in_image(plain) is None

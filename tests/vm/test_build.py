"""Kernels built from source: configuration checks, and real builds booted under QEMU.

The builds go to the real cache on purpose (like the catalog kernels of
conftest.py): the first run compiles 5.10 without and with BTF (about three
minutes each on two cores), later runs find both in the cache.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from libtrace.bpf.build import OBJECTS_ENV, object_dir
from libtrace.vm import Verdict, _kconfig, resolve, run
from libtrace.vm.build import (
    BuildRequest,
    BuiltKernel,
    KernelBuildError,
    build_kernel,
    build_name,
    built_dir,
    find_built,
    min_core_btf,
)

REPO = Path(__file__).resolve().parents[2]

needs_build_tools = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("make", "gcc", "flex", "bison", "bc", "pahole")),
    reason="needs make gcc flex bison bc pahole (scripts/install-deps.sh installs them)",
)


# --- pure tests ----------------------------------------------------------------------------


def test_names_follow_the_source_config_and_disabled_features() -> None:
    assert build_name(BuildRequest(source="5.10")) == "5.10-btf"
    assert build_name(BuildRequest(source="5.10", disable=("btf",))) == "5.10-nobtf"
    assert build_name(BuildRequest(source="5.10.262", disable=("btf",))) == "5.10.262-nobtf"
    request = BuildRequest(source="6.1", config="distro", disable=("jit", "btf", "jit"))
    assert build_name(request) == "6.1-distro-nobtf-nojit"


def test_the_fragment_has_what_the_vm_and_the_tracer_need() -> None:
    options = _kconfig.fragment_for().as_dict()
    for name in (
        "VIRTIO_PCI",
        "NET_9P_VIRTIO",
        "9P_FS",
        "OVERLAY_FS",
        "DEVTMPFS",
        "PVH",
        "BPF_SYSCALL",
        "FTRACE_SYSCALLS",
        "UPROBE_EVENTS",
        "DEBUG_INFO_BTF",
        "IPV6",
    ):
        assert options[name] == "y", name
    assert _kconfig.fragment_for(["btf"]).as_dict()["DEBUG_INFO_BTF"] == "n"
    text = _kconfig.fragment_for(["btf"], localversion="-x").text()
    assert "# CONFIG_DEBUG_INFO_BTF is not set\n" in text and 'CONFIG_LOCALVERSION="-x"' in text
    with pytest.raises(_kconfig.FragmentError, match="unknown feature"):
        _kconfig.fragment_for(["kprobes"])


def test_check_reports_every_option_kconfig_dropped(tmp_path: Path) -> None:
    config = tmp_path / ".config"
    config.write_text("CONFIG_BPF=y\n# CONFIG_PVH is not set\nCONFIG_9P_FS=m\n")
    fragment = _kconfig.Fragment((("BPF", "y"), ("PVH", "y"), ("9P_FS", "y"), ("KPROBES", "n")))
    assert _kconfig.check(config, fragment) == [
        "CONFIG_PVH=y was asked for but the result is not set",
        "CONFIG_9P_FS=y was asked for but the result is m",
    ]
    assert len(_kconfig.check(config, fragment, allow_modules=True)) == 1


def test_a_user_fragment_is_read_strictly(tmp_path: Path) -> None:
    assert _kconfig.parse_fragment("# hi\nCONFIG_A=y\n# CONFIG_B is not set\n") == {
        "A": "y",
        "B": "n",
    }
    with pytest.raises(_kconfig.FragmentError, match="line 2"):
        _kconfig.parse_fragment("CONFIG_A=y\nthis is not kconfig\n", "f")


def test_built_names_resolve_only_once_built(tmp_path: Path) -> None:
    from libtrace.vm import KernelNotFoundError

    with pytest.raises(KernelNotFoundError, match="not built yet"):
        resolve("5.10-nobtf", cache_dir=tmp_path)
    assert find_built("5.10-nobtf", tmp_path) is None


def test_a_source_package_apt_cannot_find_is_a_kernel_not_found_error(tmp_path: Path) -> None:
    from libtrace.host.apt import PackageVersion
    from libtrace.host.errors import PackageNotFoundError
    from libtrace.vm import KernelNotFoundError
    from libtrace.vm.build import source_tree

    class NoSuchPackage:
        def download(self, package: str, version: str, *_: object) -> Path:
            raise PackageNotFoundError(f"no package {package} {version} in ('sid',)")

    chosen = PackageVersion("linux-source-9.9", "9.9.1-1", "sid")
    with pytest.raises(KernelNotFoundError, match=r"no package linux-source-9\.9 ") as info:
        source_tree(NoSuchPackage(), chosen, tmp_path)  # type: ignore[arg-type]
    assert isinstance(info.value.__cause__, PackageNotFoundError)
    assert not (built_dir(tmp_path) / "src" / "linux-source-9.9_9.9.1-1").exists()


# --- real builds -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nobtf() -> BuiltKernel:
    return build_kernel(BuildRequest(source="5.10", disable=("btf",)), progress=print)


@pytest.fixture(scope="module")
def external_btf(nobtf: BuiltKernel) -> Path:
    build_kernel(BuildRequest(source="5.10"), progress=print)
    return min_core_btf(nobtf.name)


@pytest.mark.qemu
@pytest.mark.bpf
@needs_build_tools
def test_a_kernel_built_without_btf_boots_and_captures_byte_exact(
    nobtf: BuiltKernel, tmp_path: Path
) -> None:
    kernel = resolve("5.10-nobtf")
    assert kernel.vmlinuz == nobtf.vmlinuz and kernel.modules is None
    assert not nobtf.btf and nobtf.release.startswith("5.10.")
    assert resolve(f"{nobtf.version.split('-')[0]}-nobtf").vmlinuz == nobtf.vmlinuz
    command = (
        "test ! -e /sys/kernel/btf/vmlinux || { echo the kernel has BTF; exit 3; }\n"
        f"{sys.executable} -m pytest tests/tracer/test_capture.py -k native -q "
        "-p no:cacheprovider -rs\n"
    )
    log = tmp_path / "console.log"
    result = run(
        kernel,
        command,
        timeout_s=600,
        cwd=str(REPO),
        env={OBJECTS_ENV: str(object_dir())},
        console_log=log,
    )
    console = log.read_text()
    assert result.verdict is Verdict.PASS, console[-4000:]
    assert "passed" in console
    # The identity test skips itself on a kernel without BTF: the no-BTF path ran.
    assert "the kernel has no BTF" in console, console[-4000:]


GUEST_IDENTITY = """
import json, os, sys
sys.path.insert(0, {repo!r})
from libtrace import EventFlag, EventType, Tracer
from tests.tracing import Peer, drain

btf = sys.argv[1]
out = {{"kernel_btf": os.path.exists("/sys/kernel/btf/vmlinux")}}
peer = Peer("all", 0)
try:
    with Tracer(pids=(peer.pid,), btf_file=btf) as tracer:
        ledger = peer.run()
        events = drain(tracer)
        out["variant_btf"] = tracer.variant.btf
finally:
    peer.finish()
by_fd = {{s["fd"]: s for s in peer.layout["sockets"] + ledger["late"]}}
data = [e for e in events if e.type is EventType.DATA]
out["data"] = len(data)
out["wrong"] = []
for e in data:
    sock = by_fd.get(e.fd)
    if sock is None:
        out["wrong"].append(f"fd {{e.fd}} is not a peer socket")
        continue
    got = (e.l4, e.laddr, e.lport)
    want = (sock["l4"], sock["laddr"], sock["lport"])
    if sock["rport"]:
        got += (e.raddr, e.rport)
        want += (sock["raddr"], sock["rport"])
    if got != want:
        out["wrong"].append(f"fd {{e.fd}}: {{got}} != {{want}}")
out["no_btf_flag"] = any(EventFlag.NO_BTF in e.flags for e in data)
out["proc_lookup"] = any(EventFlag.PROC_LOOKUP in e.flags for e in data)
with open(os.path.join(os.environ["LIBTRACE_RESULTS"], "identity.json"), "w") as f:
    json.dump(out, f)
"""


@pytest.mark.qemu
@pytest.mark.bpf
@needs_build_tools
def test_core_identity_works_again_with_an_external_btf(
    nobtf: BuiltKernel, external_btf: Path, tmp_path: Path
) -> None:
    assert external_btf.stat().st_size > 0
    script = tmp_path / "identity.py"
    script.write_text(textwrap.dedent(GUEST_IDENTITY.format(repo=str(REPO))))
    results = tmp_path / "results"
    log = tmp_path / "console.log"
    result = run(
        resolve("5.10-nobtf"),
        f"{sys.executable} {script} {external_btf}",
        timeout_s=300,
        cwd=str(REPO),
        env={OBJECTS_ENV: str(object_dir())},
        console_log=log,
        results_dir=results,
    )
    assert result.verdict is Verdict.PASS, log.read_text()[-4000:]
    found = json.loads((results / "identity.json").read_text())
    assert found["kernel_btf"] is False
    assert found["variant_btf"] is True
    assert found["data"] > 0 and found["wrong"] == []
    assert not found["no_btf_flag"] and not found["proc_lookup"]


@pytest.mark.qemu
@needs_build_tools
def test_a_broken_fragment_is_one_clear_error_and_leaves_the_cache_clean(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken.config"
    # BPF_SYSCALL is a bool: Kconfig turns "m" into "y", which the check refuses.
    broken.write_text("CONFIG_BPF_SYSCALL=m\n")
    before = set(built_dir().iterdir()) if built_dir().is_dir() else set()
    request = BuildRequest(source="5.10", disable=("btf",), fragment=broken)
    with pytest.raises(KernelBuildError) as info:
        build_kernel(request)
    message = str(info.value)
    assert "cannot be satisfied" in message and "CONFIG_BPF_SYSCALL=m" in message
    assert "--- last lines of the build log ---" in message
    assert info.value.log is not None and info.value.log.is_file()
    after = set(built_dir().iterdir())
    leftovers = {
        p
        for p in after - before
        if p.name not in ("failed", "names", "src") and not p.name.endswith(".lock")
    }
    assert leftovers == set(), leftovers
    name = build_name(request, "x").rsplit("-custom", 1)[0]
    assert all("custom" not in p.stem for p in (built_dir() / "names").glob(f"{name}*"))


def test_kernels_keeps_listing_and_gains_build_and_btf() -> None:
    from libtrace.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["kernels"]).handler.__name__ == "handle_kernels"
    assert parser.parse_args(["kernels", "--json"]).json is True
    args = parser.parse_args(["kernels", "build", "--source", "5.10", "--disable", "btf"])
    assert (args.handler.__name__, args.source, args.disable) == ("handle_build", "5.10", ["btf"])
    assert parser.parse_args(["kernels", "btf", "5.10-nobtf"]).handler.__name__ == "handle_btf"
    with pytest.raises(SystemExit):
        parser.parse_args(["kernels", "build", "--source", "5.10", "--disable", "kprobes"])

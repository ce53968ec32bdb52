"""``libtrace kernels build --source-dir``: any kernel tree, the fragment and cache of build.py.

The pure tests cover what a tree decides: its version (from the Makefile), the
compiler, the options its Kconfig lacks and the pahole wrapper.  The real test
builds the tree that ``--source 5.10`` unpacks (Debian's linux-source-5.10,
taken through build.py's own ``source_tree`` by tests/prefetch.py) as a user's
tree, once per session, into the real cache like test_build.py does: about four
minutes on two cores the first time, cached afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from libtrace.errors import ConfigError
from libtrace.vm import KernelNotFoundError, Verdict, _kconfig, resolve, run
from libtrace.vm.build import (
    OLD_COMPILERS,
    BuildRequest,
    build_name,
    choose_compiler,
    make_argv,
    makefile_version,
    pahole_skip_options,
    pahole_wrapper,
    tree_version,
)
from tests.prefetch import linux_source_tree

REPO = Path(__file__).resolve().parents[2]

needs_build_tools = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("make", "gcc", "flex", "bison", "bc", "pahole")),
    reason="needs make gcc flex bison bc pahole (scripts/install-deps.sh installs them)",
)

MAKEFILE_HEAD = """\
# SPDX-License-Identifier: GPL-2.0
VERSION = 4
PATCHLEVEL = 20
SUBLEVEL = 17
EXTRAVERSION =
NAME = "People's Front"

# *DOCUMENTATION*
"""

#: What ``pahole --help`` of 1.24 says about the options the wrapper may add.
PAHOLE_124_HELP = """\
      --skip_encoding_btf_decl_tag
      --skip_encoding_btf_enum64   Do not encode ENUM64sin BTF.
      --skip_encoding_btf_type_tag
      --skip_encoding_btf_vars   Do not encode VARs in BTF.
"""


def fake_tree(root: Path, makefile: str = MAKEFILE_HEAD) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Makefile").write_text(makefile)
    (root / "Kconfig").write_text('mainmenu "Linux"\nsource "init/Kconfig"\n')
    return root


# --- the version from the Makefile ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (MAKEFILE_HEAD, (4, 20, 17)),
        ("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\nEXTRAVERSION = -rc3\n", (6, 1, 0)),
        ("VERSION=5\nPATCHLEVEL\t= 4\nSUBLEVEL = 0 \n", (5, 4, 0)),
        ("VERSION = 5\nPATCHLEVEL = 4\n", None),  # no SUBLEVEL
        ("# VERSION = 5\nPATCHLEVEL = 4\nSUBLEVEL = 1\n", None),  # a comment is not the variable
        ("KERNELVERSION = 5.4.1\n", None),
        ("", None),
    ],
    ids=["4.19", "rc", "spacing", "no-sublevel", "commented", "other-variable", "empty"],
)
def test_the_version_comes_from_the_makefile(text: str, want: tuple[int, int, int] | None) -> None:
    assert makefile_version(text) == want


def test_a_tree_names_its_build_by_its_full_version(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "linux")
    assert tree_version(tree) == (4, 20, 17)
    assert build_name(BuildRequest(source_dir=tree)) == "4.20.17-btf"
    request = BuildRequest(source_dir=tree, disable=("btf", "jit"))
    assert build_name(request) == "4.20.17-nobtf-nojit"


@pytest.mark.parametrize("what", ["missing", "empty", "no-version", "no-kconfig"])
def test_a_directory_that_is_not_a_kernel_tree_is_refused(tmp_path: Path, what: str) -> None:
    tree = tmp_path / "dir"
    if what != "missing":
        tree.mkdir()
    if what == "no-version":
        (tree / "Makefile").write_text("all:\n\ttrue\n")
        (tree / "Kconfig").write_text("")
    if what == "no-kconfig":
        (tree / "Makefile").write_text(MAKEFILE_HEAD)
    with pytest.raises(KernelNotFoundError, match="is not a kernel source tree"):
        build_name(BuildRequest(source_dir=tree))


def test_the_cli_refuses_a_non_tree_in_one_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from libtrace.cli import main

    assert main(["kernels", "build", "--source-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a kernel source tree" in err, err


def test_source_and_source_dir_exclude_each_other(tmp_path: Path) -> None:
    from libtrace.cli import build_parser

    with pytest.raises(ConfigError):
        BuildRequest()
    with pytest.raises(ConfigError):
        BuildRequest(source="5.10", source_dir=tmp_path)
    parser = build_parser()
    for argv in ([], ["--source", "5.10", "--source-dir", str(tmp_path)]):
        with pytest.raises(SystemExit):
            parser.parse_args(["kernels", "build", *argv])
    args = parser.parse_args(["kernels", "build", "--source-dir", str(tmp_path)])
    assert (args.source, args.source_dir) == (None, tmp_path)


def test_a_tree_cannot_take_debians_config(tmp_path: Path) -> None:
    from libtrace.vm.build import build_kernel

    request = BuildRequest(source_dir=fake_tree(tmp_path / "linux"), config="distro")
    with pytest.raises(ConfigError, match="--config distro needs --source"):
        build_kernel(request, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()  # refused before anything was written


# --- the compiler ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "installed", "want"),
    [
        ((4, 20, 17), {"gcc-11", "gcc-10"}, "gcc-11"),
        ((5, 8, 0), {"gcc-10"}, "gcc-10"),
        ((5, 14, 21), {"gcc-11"}, "gcc-11"),
        ((5, 15, 0), {"gcc-11", "gcc-10"}, "gcc"),
        ((6, 1, 0), {"gcc-11"}, "gcc"),
    ],
    ids=["4.19-both", "5.8-gcc10", "5.14-gcc11", "5.15", "6.1"],
)
def test_older_kernels_get_the_newest_older_gcc(
    version: tuple[int, int, int], installed: set[str], want: str
) -> None:
    compiler, note = choose_compiler(version, lambda name: name if name in installed else None)
    assert (compiler, note) == (want, "")


def test_an_old_kernel_without_an_old_gcc_says_what_to_install() -> None:
    compiler, note = choose_compiler((4, 14, 0), lambda name: None)
    assert compiler == "gcc"
    assert f"apt-get install {OLD_COMPILERS[0]}" in note


def test_every_make_gets_the_compiler_and_the_pahole_wrapper(tmp_path: Path) -> None:
    argv = make_argv(tmp_path / "src", tmp_path / "work", 2, "gcc-11", tmp_path / "pahole")
    assert argv[:2] == ["make", "-C"]
    assert {"CC=gcc-11", "HOSTCC=gcc-11", f"PAHOLE={tmp_path / 'pahole'}", "-j2"} <= set(argv)
    # A vendor tree's Makefile may name a cross toolchain: the command line wins.
    assert {"ARCH=x86_64", "CROSS_COMPILE="} <= set(argv)
    assert not any(a.startswith("PAHOLE=") for a in make_argv(tmp_path, tmp_path, 1, "gcc"))


# --- options the tree does not define ------------------------------------------------------


def test_defined_symbols_come_from_the_trees_kconfig_files(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "linux")
    files = {
        "init/Kconfig": "config BPF\n\tbool\nmenuconfig NET\n\tbool\n"
        "# config COMMENTED\n\thelp\n\t  config IN_HELP_TEXT is prose\n",
        "lib/Kconfig.debug": "  config DEBUG_INFO\n\tbool\n\tdepends on !BROKEN\n",
        "arch/x86/Kconfig": "config PVH\n\tbool\n",
        "arch/x86/Kconfig.cpu": "config X86_64\n",
        "arch/arm64/Kconfig": "config ARM64_ONLY\n",
        "net/Makefile": "config NOT_KCONFIG\n",
        ".git/Kconfig": "config IN_GIT\n",
    }
    for rel, text in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(text)
    defined = _kconfig.defined_symbols(tree)
    assert {"BPF", "NET", "DEBUG_INFO", "PVH", "X86_64"} <= defined
    assert not defined & {"COMMENTED", "ARM64_ONLY", "NOT_KCONFIG", "IN_GIT"}


def test_absent_options_are_reported_not_checked(tmp_path: Path) -> None:
    config = tmp_path / ".config"
    config.write_text("CONFIG_BPF=y\n# CONFIG_NET is not set\n")
    fragment = _kconfig.Fragment(
        (("BPF", "y"), ("PVH", "y"), ("NET", "y"), ("DEBUG_INFO_BTF", "n"))
    )
    defined = {"BPF", "NET"}
    assert _kconfig.absent(fragment, defined) == ["PVH", "DEBUG_INFO_BTF"]
    # NET is defined but unsatisfied: still an error; PVH is absent: not one.
    assert _kconfig.check(config, fragment, defined=defined) == [
        "CONFIG_NET=y was asked for but the result is not set"
    ]
    assert len(_kconfig.check(config, fragment)) == 2  # without `defined`, as before


def test_the_fragment_has_af_packet_and_its_own_config() -> None:
    options = _kconfig.fragment_for().as_dict()
    assert options["PACKET"] == options["IKCONFIG"] == options["IKCONFIG_PROC"] == "y"


# --- the pahole wrapper ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "want"),
    [
        ((5, 8, 0), ["enum64", "type_tag", "decl_tag"]),
        ((5, 16, 0), ["enum64", "type_tag"]),
        ((5, 17, 0), ["enum64"]),
        ((6, 0, 0), []),
        ((6, 12, 1), []),
    ],
    ids=["5.8", "5.16", "5.17", "6.0", "6.12"],
)
def test_pahole_skips_the_kinds_the_kernel_predates(
    version: tuple[int, int, int], want: list[str]
) -> None:
    options = pahole_skip_options(version, PAHOLE_124_HELP)
    assert options == [f"--skip_encoding_btf_{kind}" for kind in want]


def test_pahole_skips_only_what_the_installed_pahole_offers() -> None:
    old_help = "      --skip_encoding_btf_vars   Do not encode VARs in BTF.\n"
    assert pahole_skip_options((5, 4, 0), old_help) == []
    only_tags = "--skip_encoding_btf_decl_tag\n--skip_encoding_btf_type_tag\n"
    assert pahole_skip_options((5, 10, 0), only_tags) == [
        "--skip_encoding_btf_type_tag",
        "--skip_encoding_btf_decl_tag",
    ]
    # A longer option that merely starts with the name is not the option.
    assert pahole_skip_options((5, 10, 0), "--skip_encoding_btf_enum64_more\n") == []


def test_the_wrapper_adds_options_to_btf_encoding_only(tmp_path: Path) -> None:
    record = tmp_path / "args"
    real = tmp_path / "real pahole"  # a space: the wrapper quotes it
    real.write_text(f'#!/bin/sh\nprintf "%s|" "$@" >> "{record}"\necho >> "{record}"\n')
    real.chmod(0o755)
    wrapper = tmp_path / "pahole"
    wrapper.write_text(pahole_wrapper(str(real), ["--skip_encoding_btf_enum64"]))
    wrapper.chmod(0o755)
    for argv in (["--version"], ["-J", "--btf_gen_floats", "vmlinux"], ["-C", "task struct"]):
        subprocess.run([str(wrapper), *argv], check=True)
    assert record.read_text().splitlines() == [
        "--version|",
        "--skip_encoding_btf_enum64|-J|--btf_gen_floats|vmlinux|",
        "-C|task struct|",
    ]


# --- a real build of a tree ------------------------------------------------------------------


@pytest.fixture(scope="session")
def debian_510_tree() -> Path:
    """The pristine tree of Debian's newest linux-source-5.10, unpacked once into the
    cache (the one ``python -m tests.prefetch`` fetches)."""
    return linux_source_tree(progress=print)


def build_cli(tree: Path) -> tuple[dict[str, Any], str]:
    """Run ``libtrace kernels build --source-dir TREE --json`` as a user would."""
    argv = [sys.executable, "-c", "import sys; from libtrace.cli import main; sys.exit(main())"]
    jobs = str(min(os.cpu_count() or 1, 2))
    argv += ["kernels", "build", "--source-dir", str(tree), "-j", jobs, "--json"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=3600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout), proc.stderr


def written_since(tree: Path, stamp: float) -> list[str]:
    """Paths in ``tree`` (directories included: a file made and removed changes its
    directory) modified after ``stamp``."""
    found = []
    for top, dirs, files in os.walk(tree):
        for name in [*dirs, *files, ""]:
            path = os.path.join(top, name) if name else top
            if os.lstat(path).st_mtime > stamp:
                found.append(path)
    return found


@pytest.fixture(scope="session")
def tree_build(debian_510_tree: Path) -> dict[str, Any]:
    """The 5.10 tree built as a ``--source-dir`` (with BTF), shared by the tests below;
    ``written`` lists what the build wrote into the tree (nothing, when it was cached)."""
    stamp = time.time()
    built, _ = build_cli(debian_510_tree)
    built["written"] = written_since(debian_510_tree, stamp)
    return built


@needs_build_tools
def test_a_source_dir_builds_once_and_is_cached(
    debian_510_tree: Path, tree_build: dict[str, Any]
) -> None:
    version = ".".join(map(str, tree_version(debian_510_tree)))
    assert version.startswith("5.10.")
    assert tree_build["name"] == f"{version}-btf"
    assert tree_build["source_dir"] == str(debian_510_tree.resolve())
    assert tree_build["release"] == f"{version}-libtrace-btf"
    assert Path(tree_build["vmlinuz"]).is_file()
    assert tree_build["btf"] is True and tree_build["absent_options"] == []
    marker = json.loads((Path(tree_build["entry"]) / ".libtrace-complete").read_text())
    assert marker["compiler"] == tree_build["compiler"]
    if not tree_build["cached"]:
        # Built now, so with the compiler chosen for 5.10; a cached build keeps the
        # one that made it (gcc-11 installed after a build with gcc changes the choice).
        assert tree_build["compiler"] == choose_compiler((5, 10, 0))[0]
    assert marker["absent_options"] == []
    # The tree stays pristine: the build ran out of tree.
    assert tree_build["written"] == []
    assert not (debian_510_tree / ".config").exists()
    assert not (debian_510_tree / "include/config").exists()

    again, progress = build_cli(debian_510_tree)
    assert again["cached"] is True
    assert (again["entry"], again["vmlinuz"]) == (tree_build["entry"], tree_build["vmlinuz"])
    assert "compiling" not in progress and "updating package lists" not in progress


@pytest.mark.qemu
@needs_build_tools
def test_a_source_dir_kernel_boots_with_its_btf_config_and_af_packet(
    tree_build: dict[str, Any], tmp_path: Path
) -> None:
    command = (
        "test -e /sys/kernel/btf/vmlinux || { echo no BTF; exit 3; }\n"
        "test -e /proc/config.gz || { echo no config.gz; exit 4; }\n"
        f"{sys.executable} -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)'"
        " || exit 5\n"
    )
    log = tmp_path / "console.log"
    result = run(resolve(tree_build["vmlinuz"]), command, timeout_s=300, console_log=log)
    console = log.read_text()
    assert result.verdict is Verdict.PASS, console[-4000:]
    # The kernel accepted the BTF pahole wrote for it (a kernel older than a BTF kind rejects
    # its own BTF at boot).
    assert "Invalid btf_info" not in console and "failed to validate" not in console

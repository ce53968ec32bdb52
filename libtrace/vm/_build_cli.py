"""``libtrace kernels build`` and ``libtrace kernels btf`` (see ``build.py``).

:func:`add_build_commands` adds both under ``kernels``; plain ``libtrace
kernels`` still lists.  Exit statuses: 0 done, 1 the build or bpftool failed
(the message ends with the log tail), 2 the source or kernel is unknown (an
unknown ``--source``, a ``--source-dir`` that is not a kernel tree).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from ..errors import ConfigError, ExitCode, VmError, print_error
from ._errors import KernelNotFoundError
from ._kconfig import FEATURES, FragmentError
from .build import CONFIGS, BuildRequest, KernelBuildError, build_kernel, min_core_btf

#: Exit status for an unknown source, feature or kernel.


def add_build_commands(subparsers: Any) -> None:
    """Add ``build`` and ``btf`` to the ``kernels`` subparsers."""
    build = subparsers.add_parser(
        "build",
        help="build a kernel from a Debian linux-source package or a source tree",
        description="Build a kernel from Debian's linux-source-SERIES, or from a kernel "
        "source tree you have, with a config fragment (what the VM runner needs built in, "
        "plus BPF, tracepoints, uprobes and BTF), cached by source version and config.  "
        "The result is a kernel row named like 5.10-btf or 5.10-nobtf (5.10.262-btf from "
        "a tree), usable wherever a kernel SPEC is.",
    )
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--source", metavar="SERIES", help="5.10 (newest) or 5.10.262")
    source.add_argument(
        "--source-dir",
        type=Path,
        metavar="DIR",
        help="a kernel source tree (built out of tree, never written to; nothing is "
        "downloaded); kernels before 5.15 are compiled with gcc-11 or gcc-10 when installed",
    )
    build.add_argument(
        "--config",
        choices=CONFIGS,
        default="minimal",
        help="minimal: tinyconfig + fragment (minutes); distro: Debian's config + fragment "
        "(about an hour on two cores)",
    )
    build.add_argument(
        "--disable",
        action="append",
        default=[],
        choices=sorted(FEATURES),
        metavar="FEATURE",
        help=f"turn a feature off ({', '.join(FEATURES)}); repeatable",
    )
    build.add_argument(
        "--fragment", type=Path, metavar="FILE", help="an extra config fragment, merged last"
    )
    build.add_argument("--jobs", "-j", type=int, default=None, metavar="N", help="make -j")
    build.add_argument("--json", action="store_true", help="print the result as JSON")
    build.set_defaults(handler=handle_build)

    btf = subparsers.add_parser(
        "btf",
        help="generate a minimal external BTF for libtrace on a built kernel",
        description="Run `bpftool gen min_core_btf` on the vmlinux of KERNEL (or, for a "
        "-nobtf build, of its -btf twin) for every libtrace BPF object, and print the "
        "file's path: give it to `libtrace trace --btf` or Tracer(btf_file=…).",
    )
    btf.add_argument("kernel", metavar="KERNEL", help="a built kernel, e.g. 5.10-nobtf")
    btf.add_argument("--output", "-o", type=Path, metavar="FILE", help="where to write it")
    btf.set_defaults(handler=handle_btf)


def handle_build(args: argparse.Namespace) -> int:
    """``libtrace kernels build``."""
    err = Console(stderr=True, soft_wrap=True)

    def progress(message: str) -> None:
        err.print(f"[dim]… {escape(message)}[/]")

    try:
        request = BuildRequest(
            source=args.source or "",
            source_dir=args.source_dir,
            config=args.config,
            disable=tuple(args.disable),
            fragment=args.fragment,
            **({"jobs": args.jobs} if args.jobs else {}),
        )
        built = build_kernel(request, progress=progress)
    except (KernelNotFoundError, FragmentError, ConfigError) as exc:
        print_error(exc)
        return ExitCode.USAGE
    except VmError as exc:
        print_error(exc)
        return ExitCode.FAILED
    if args.json:
        print(
            json.dumps(
                {
                    "name": built.name,
                    "release": built.release,
                    "package": built.package,
                    "version": built.version,
                    "source_dir": str(built.source_dir) if built.source_dir else None,
                    "btf": built.btf,
                    "compiler": built.compiler,
                    "absent_options": [f"CONFIG_{name}" for name in built.absent_options],
                    "cached": built.cached,
                    "build_s": round(built.build_s, 1),
                    "vmlinuz": str(built.vmlinuz),
                    "entry": str(built.entry),
                },
                indent=2,
            )
        )
    else:
        how = "cached" if built.cached else f"built in {built.build_s / 60:.1f} min"
        err.print(f"[green]{escape(built.name)}[/]: {escape(built.release)} ({how})")
        err.print(f"[dim]{escape(str(built.vmlinuz))}[/]", highlight=False)
        if built.cached and built.absent_options:
            absent = ", ".join(f"CONFIG_{name}" for name in built.absent_options)
            err.print(f"[dim]not in this tree: {escape(absent)}[/]", highlight=False)
        print(built.name)
    return ExitCode.OK


def handle_btf(args: argparse.Namespace) -> int:
    """``libtrace kernels btf KERNEL``: prints the BTF file's path."""
    try:
        path = min_core_btf(args.kernel, args.output)
    except KernelNotFoundError as exc:
        print_error(exc)
        return ExitCode.USAGE
    except (VmError, KernelBuildError) as exc:
        print_error(exc)
        return ExitCode.FAILED
    print(path)
    return ExitCode.OK

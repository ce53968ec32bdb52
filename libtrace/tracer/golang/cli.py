"""The ``libtrace go-inspect BINARY`` subcommand.

Exit codes follow :mod:`libtrace.cli`: 0 on success, 2 when the file is not
an inspectable Go binary (one line on standard error says why).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from ...errors import ExitCode, GoBinaryError

if TYPE_CHECKING:
    from .inspect import GoBinary



def add_go_inspect_command(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``go-inspect`` to the ``libtrace`` command's subparsers."""
    parser = subparsers.add_parser(
        "go-inspect",
        help="show what Go TLS tracing needs to know about a Go binary",
        description="Read a Go binary's version, ABI, PIE-ness, the entry and RET offsets "
        "of crypto/tls.(*Conn).Read/Write and the struct offsets from *tls.Conn to the "
        "socket fd and to the goroutine id.  ret_offsets, entry_offset (where the entry "
        "probe goes: the stack check's jump, which the kernel emulates) and copy_offsets "
        "(Read's calls of runtime.memmove, probed instead of its RETs) are relative to "
        "the function entry; 'offset' is the entry's file offset.",
    )
    parser.add_argument("binary", metavar="BINARY", help="path of the Go executable")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--function",
        action="append",
        default=[],
        metavar="NAME",
        help="inspect this function instead of the TLS ones (repeatable)",
    )
    parser.set_defaults(handler=run_go_inspect)


def run_go_inspect(args: argparse.Namespace) -> int:
    """Inspect ``args.binary`` and print the result; return the exit code."""
    from .inspect import TLS_FUNCTIONS, inspect_binary

    try:
        result = inspect_binary(args.binary, args.function or TLS_FUNCTIONS)
    except GoBinaryError as exc:
        print(f"libtrace go-inspect: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(render(result))
    return ExitCode.OK


def render(result: GoBinary) -> str:
    """A human-readable summary."""
    lines = [
        f"{result.path}: {result.go_version} {result.arch}, {result.abi} ABI, "
        f"{'PIE' if result.pie else 'not PIE'}, "
        f"{'stripped' if result.stripped else 'with symbols'} "
        f"(functions from {result.symbol_source}, pclntab {result.pclntab_format})",
    ]
    if result.module_path or result.main_path:
        lines.append(f"  module {result.module_path}  main {result.main_path}")
    for name, function in result.functions.items():
        rets = ", ".join(f"+{r:#x}" for r in function.ret_offsets)
        lines.append(
            f"  {name}: address {function.address:#x}, file offset {function.offset:#x}, "
            f"size {function.size}, entry probe at +{function.entry_offset:#x}, "
            f"RET at {rets or 'none'}"
            + "".join(f", memmove call at +{c:#x}" for c in function.copy_offsets)
        )
    lines.append(f"  offsets ({result.offsets_source}):")
    for key, value in result.offsets.items():
        lines.append(f"    {key} = {value}")
    return "\n".join(lines)

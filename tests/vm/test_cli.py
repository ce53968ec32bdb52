"""``libtrace vm run`` and ``libtrace kernels`` through their own parser."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import pytest

from libtrace.vm import Kernel
from libtrace.vm.cli import add_vm_commands


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="libtrace")
    add_vm_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def test_kernels_json_lists_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kernels", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = [row["name"] for row in rows]
    assert names[:4] == ["host", "debian-5.10", "debian-6.1", "debian-6.12"]
    host = rows[0]
    assert host["cached"] is True and host["source"] == "host"
    assert set(host) == {"name", "cached", "release", "version", "source"}


def test_kernels_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kernels"]) == 0
    out = capsys.readouterr().out
    assert "debian-6.12" in out and "cached" in out


def test_vm_run_on_the_host_passes_the_exit_code_through(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["vm", "run", "--kernel", "host", "--", "echo hello; exit 7"]) == 7
    captured = capsys.readouterr()
    assert "hello" in captured.out
    assert "FAIL" in captured.err and "exit code 7" in captured.err


def test_several_command_words_are_quoted(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vm", "run", "--kernel", "host", "--", "echo", "a  b", "$HOME"]) == 0
    assert "a  b $HOME" in capsys.readouterr().out


def test_an_unknown_kernel_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vm", "run", "--kernel", "debian-0.1", "--", "true"]) == 2
    assert "unknown catalog kernel" in capsys.readouterr().err


def test_a_timeout_exits_124(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vm", "run", "--kernel", "host", "--timeout", "0.5", "--", "sleep 30"]) == 124
    assert "TIMEOUT" in capsys.readouterr().err


@pytest.mark.qemu
def test_vm_run_in_a_guest_shows_the_command_and_the_payload_output(
    capsys: pytest.CaptureFixture[str], catalog_kernel: Callable[[str], Kernel]
) -> None:
    kernel = catalog_kernel("debian-6.12")
    code = main(
        ["vm", "run", "--kernel", "debian-6.12", "--show-command", "--", "uname -r; exit 5"]
    )
    captured = capsys.readouterr()
    assert code == 5
    assert captured.out.splitlines() == [kernel.release]  # the payload's output only
    assert "qemu-system-x86_64" in captured.err and "-no-reboot" in captured.err
    assert "FAIL" in captured.err

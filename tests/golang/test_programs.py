"""The Go test programs work: HTTPS over HTTP/1.1 and HTTP/2, with every toolchain.

Also the ``go-inspect`` JSON contract on a real binary.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from libtrace.tracer.golang.cli import add_go_inspect_command

from .conftest import go_binary, go_versions

pytestmark = pytest.mark.go_toolchain

#: Seconds a test program may take to start or to answer.
PROGRAM_TIMEOUT_S = 20


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, bool]]:
    version, http1 = request.param
    binary = go_binary("https_server", version, stripped=True)
    argv = [str(binary), "-addr", "127.0.0.1:0"] + (["-http1"] if http1 else [])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on "), line
        yield line.split()[-1], http1
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    ("version", "server"),
    [(v, (v, http1)) for v in go_versions() for http1 in (True, False)],
    ids=[f"{v}-{'http1' if h else 'h2'}" for v in go_versions() for h in (True, False)],
    indirect=["server"],
)
def test_client_and_server(version: str, server: tuple[str, bool], tmp_path: Path) -> None:
    addr, http1 = server
    client = go_binary("https_client", version, stripped=False)
    keylog = tmp_path / "keys"
    argv = [str(client), "-url", f"https://{addr}/x", "-n", "2", "-keylog", str(keylog)]
    if not http1:
        argv.append("-h2")
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=PROGRAM_TIMEOUT_S, check=True
    )
    proto = "HTTP/1.1" if http1 else "HTTP/2.0"
    assert out.stdout.splitlines() == [f"{proto} 200 hello {proto} /x 0"] * 2
    assert "CLIENT_" in keylog.read_text()  # TLS secrets for the tshark oracle


@pytest.mark.parametrize("stripped", [False, True], ids=["symbols", "stripped"])
def test_cli_json_contract(stripped: bool, capsys: pytest.CaptureFixture[str]) -> None:
    version = go_versions()[-1]
    binary = go_binary("https_client", version, stripped=stripped)
    parser = argparse.ArgumentParser(prog="libtrace")
    add_go_inspect_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["go-inspect", str(binary), "--json"])
    assert args.handler(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["go_version"].startswith(f"go{version}")
    assert doc["abi"] in ("register", "stack")
    assert doc["stripped"] is stripped and doc["pie"] is False
    for name in ("crypto/tls.(*Conn).Write", "crypto/tls.(*Conn).Read"):
        symbol = doc["symbols"][name]
        assert {"address", "offset", "ret_offsets"} <= symbol.keys()
        assert all(0 < r < symbol["size"] for r in symbol["ret_offsets"])
    assert doc["offsets"]["internal/poll.FD.Sysfd"] == 16
    args = parser.parse_args(["go-inspect", str(binary)])
    assert args.handler(args) == 0
    assert "RET at +0x" in capsys.readouterr().out

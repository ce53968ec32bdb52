"""Go TLS uprobe overhead: a Go HTTPS request loop, traced and untraced, in one run.

Theory of operation: the test programs of tests/golang (a stdlib HTTPS
server and client, built with the newest Debian Go toolchain) run a loop of
``--requests`` requests over one keep-alive connection (HTTP/1.1, or HTTP/2
with ``--h2``); the client times its own loop.  Rounds alternate untraced
and traced (a :class:`~libtrace.Tracer` with the Go TLS uprobes attached to
both programs, draining in this process), so machine noise hits both alike;
``ratio`` is traced over untraced requests per second, medians of the
rounds.  A third mode traces the same programs without the uprobes
(``syscalls_only``: the socket capture of the ciphertext alone), which tells
the uprobes' share of the cost from the rest.  Every request is a record write
on each side and three Reads between them (an entry and one of its RETs each):
eight uprobe hits per request (counted, see below), four or five events.

With the kernel's BPF statistics on, the traced rounds also count the uprobe
programs' runs (``uprobe_hits_per_request``, the hits that remain) and their
BPF time per hit; ``us_per_hit`` is the wall time the uprobes add to a
request (traced against syscalls_only) over its hits: the trap, the
single-step and the program together, as the loop feels them.
``uprobe_trap_us`` is the trap alone, before any program: a tracefs uprobe
on a C function called in a loop (:mod:`benchmarks._uprobe_trap`), on an
instruction the kernel single-steps (as the RET probes are) and, as
``uprobe_trap_emulated_us``, on one it emulates (as the entry probes are,
on the stack check's jump, and on ``Read``'s call of ``runtime.memmove``);
``hits_per_request_by_program`` splits the hits by program, and
``bpf_ns_per_hit_by_program`` the BPF time per hit (both None where bpftool
shows only the kernel's 15-character names, which do not tell
``lt_go_tls_read_enter`` from ``lt_go_tls_read_return``).

Run from the repository root::

    python3 benchmarks/go_tls_overhead.py [--requests N] [--rounds R] [--h2] [--quick]

It prints one JSON object on stdout (progress goes to stderr).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import re
import statistics
import subprocess
import time
from typing import Any

from benchmarks._bpf_stats import bpf_stats, lt_run_time, program_runs
from benchmarks._common import emit, exit_on_sigterm, log, stop
from benchmarks._uprobe_trap import trap_us
from libtrace import Tracer
from libtrace.host.go_toolchains import GO_VERSIONS, build
from libtrace.tracer.golang.attach import UPROBE_PROGRAMS

PROGRAMS = Path(__file__).resolve().parent.parent / "tests" / "golang" / "programs"
#: Without BTF bpftool shows only 15 characters of a name: match on those.
UPROBE_PREFIXES = tuple(name[:15] for name in UPROBE_PROGRAMS)
#: The client sleeps this long before its loop, so the tracer can attach first.
CLIENT_WAIT_S = 1.0


def _server(binary: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([str(binary), "-addr", "127.0.0.1:0"], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    match = re.search(r":(\d+)$", proc.stdout.readline().strip())
    if not match:
        stop(proc)
        raise RuntimeError("the Go HTTPS server did not start")
    return proc, int(match.group(1))


def _client(binary: Path, port: int, args: argparse.Namespace) -> subprocess.Popen[str]:
    argv = [str(binary), "-url", f"https://127.0.0.1:{port}/", "-n", str(args.requests), "-q",
            "-wait", f"{CLIENT_WAIT_S}s", *(["-h2"] if args.h2 else [])]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _elapsed(client: subprocess.Popen[str]) -> float:
    _, err = client.communicate(timeout=600)
    match = re.search(r"elapsed_ns (\d+)", err)
    if client.returncode != 0 or not match:
        raise RuntimeError(f"the Go HTTPS client failed: {err.strip()[-300:]}")
    return int(match.group(1)) / 1e9


def _uprobe_runs() -> tuple[int, int, dict[str, tuple[int, int]] | None]:
    """The uprobe programs' (BPF ns, runs, (BPF ns, runs) by program) so far,
    from one bpftool snapshot; by program is None where bpftool shows only the
    kernel's 15-character names, which do not tell the two Read programs apart."""
    runs = program_runs()
    ns, hits = lt_run_time(UPROBE_PREFIXES, runs)
    if not all(name in runs for name in UPROBE_PROGRAMS):
        return ns, hits, None
    return ns, hits, {name: runs[name] for name in UPROBE_PROGRAMS}


def one_round(server_bin: Path, client_bin: Path, args: argparse.Namespace,
              mode: str) -> dict[str, Any]:
    server, port = _server(server_bin)
    try:
        if mode == "untraced":
            seconds = _elapsed(_client(client_bin, port, args))
            return {"rps": args.requests / seconds}
        with Tracer(go_attach_delay=0.2, go_tls=mode == "traced") as tracer:
            ns0, hits0, by_program0 = _uprobe_runs()
            client = _client(client_bin, port, args)
            events, seen = 0, set()
            while client.poll() is None:
                events += sum(1 for e in tracer.poll(100) if e.tls)
                seen |= tracer.go_tls.attached.keys() if tracer.go_tls else set()
            seconds = _elapsed(client)
            ns1, hits1, by_program1 = _uprobe_runs()
            events += sum(1 for e in tracer.poll(100) if e.tls)
            stats = tracer.stats()
            attached = seen >= {server.pid, client.pid}
        return {"rps": args.requests / seconds, "tls_events": events, "lost": stats.lost,
                "attached_both": attached, "uprobe_hits": hits1 - hits0,
                "hits_by_program": None if by_program0 is None or by_program1 is None else {
                    name: by_program1[name][1] - by_program0[name][1] for name in UPROBE_PROGRAMS},
                "bpf_ns_by_program": None if by_program0 is None or by_program1 is None else {
                    name: by_program1[name][0] - by_program0[name][0] for name in UPROBE_PROGRAMS},
                "uprobe_bpf_ns": ns1 - ns0}
    finally:
        stop(server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--h2", action="store_true", help="HTTP/2 instead of HTTP/1.1")
    parser.add_argument("--go", default=GO_VERSIONS[-1], help="Go toolchain version")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 300 requests, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.rounds = 300, 1
    exit_on_sigterm()
    server_bin = build(PROGRAMS / "https_server", args.go, False)
    client_bin = build(PROGRAMS / "https_client", args.go, False)
    trap, emulated = trap_us(), trap_us(kind="emulated")
    log(f"a uprobe hit's trap alone (tracefs, no BPF): {trap} us stepped, {emulated} us emulated")
    rounds: dict[str, list[dict[str, Any]]] = {"untraced": [], "syscalls_only": [], "traced": []}
    with bpf_stats() as stats_on:
        for index in range(args.rounds):
            for mode in rounds:
                result = one_round(server_bin, client_bin, args, mode)
                log(f"round {index + 1}/{args.rounds} {mode}: {result['rps']:.0f} requests/s")
                rounds[mode].append(result)
            time.sleep(0.2)
    untraced = statistics.median(r["rps"] for r in rounds["untraced"])
    traced = statistics.median(r["rps"] for r in rounds["traced"])
    syscalls = statistics.median(r["rps"] for r in rounds["syscalls_only"])
    emit({
        "benchmark": "go_tls_overhead",
        "go": args.go,
        "protocol": "http2" if args.h2 else "http1.1",
        "requests": args.requests,
        "rounds": args.rounds,
        "untraced_rps": round(untraced, 1),
        "traced_rps": round(traced, 1),
        "ratio": round(traced / untraced, 3),
        "syscalls_only_rps": round(syscalls, 1),
        "syscalls_only_ratio": round(syscalls / untraced, 3),
        "tls_events_per_request": round(
            statistics.median(r["tls_events"] for r in rounds["traced"]) / args.requests, 2),
        "lost": sum(r["lost"] for r in rounds["traced"]),
        "attached_both": all(r["attached_both"] for r in rounds["traced"]),
        **_hit_costs(rounds["traced"], args.requests, traced, syscalls, stats_on),
        "uprobe_trap_us": trap,
        "uprobe_trap_emulated_us": emulated,
    })
    return 0


def _hit_costs(traced_rounds: list[dict[str, Any]], requests: int, traced_rps: float,
               syscalls_rps: float, stats_on: bool) -> dict[str, Any]:
    """Uprobe hits per request and what each costs (None without BPF statistics)."""
    hits = statistics.median(r["uprobe_hits"] for r in traced_rounds) if stats_on else 0
    if not hits:
        return {"uprobe_hits_per_request": None, "hits_per_request_by_program": None,
                "bpf_ns_per_hit": None, "bpf_ns_per_hit_by_program": None, "us_per_hit": None}
    per_request = hits / requests
    bpf_ns = statistics.median(r["uprobe_bpf_ns"] for r in traced_rounds)
    added_s = 1 / traced_rps - 1 / syscalls_rps  # wall time the uprobes add per request
    split = [r["hits_by_program"] for r in traced_rounds if r["hits_by_program"] is not None]
    by_program = {
        name: round(statistics.median(counts[name] for counts in split) / requests, 2)
        for name in UPROBE_PROGRAMS
    } if split else None  # fmt: skip
    # Each program's BPF time over its hits, summed over the rounds (a program
    # hit in no round has no cost to tell: None).
    ns_split = [(r["bpf_ns_by_program"], r["hits_by_program"]) for r in traced_rounds
                if r["hits_by_program"] is not None]  # fmt: skip
    ns_by_program = {
        name: _per_hit(sum(ns[name] for ns, _ in ns_split), sum(n[name] for _, n in ns_split))
        for name in UPROBE_PROGRAMS
    } if ns_split else None  # fmt: skip
    return {
        "uprobe_hits_per_request": round(per_request, 2),
        "hits_per_request_by_program": by_program,
        "bpf_ns_per_hit": round(bpf_ns / hits),
        "bpf_ns_per_hit_by_program": ns_by_program,
        "us_per_hit": round(added_s / per_request * 1e6, 2),
    }


def _per_hit(ns: int, hits: int) -> int | None:
    """BPF nanoseconds per hit, or None for a program that was never hit."""
    return round(ns / hits) if hits else None


if __name__ == "__main__":
    sys.exit(main())

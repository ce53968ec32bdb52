"""``python -m fuzzing``: every target in turn, one JSON object each, then a summary.

Each target runs until it has made ``--runs`` executions or ``--seconds``
have passed (``--seconds-other`` for the pcap reader, whose every input goes
through dpkt and the flow layer, and for the decoder), whichever comes
first: the parsers differ several-fold in speed, so a time long enough for
the slowest to make its million would leave the fastest idling.  The summary
says for each parser whether it reached ``--min-runs``; the exit status is 1
if any target found something or a parser fell short, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from . import _seeds, _targets

#: libFuzzer's -max_len per target kind: room for the seeds, small enough to mutate fast.
MAX_LEN = {"parser": 4096, "pcap": 32768, "decoder": 8192}
#: libFuzzer's own hang bound (seconds): an input still running then is a "timeout"
#: finding (the 100 ms bound is checked in the child, on CPU time).
HANG_S = 10
#: The modules that must run from source for the instrumentation to see them.
MUST_BE_PURE = ("libtrace.parsers._base", "libtrace.pcap._session", "libtrace.flows.tcp")


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fuzzing", description=__doc__.split("\n")[0])
    parser.add_argument("targets", nargs="*", help="targets to run (default: all)")
    parser.add_argument("--seconds", type=int, default=14400,
                        help="time limit per parser (default 14400: the slowest parser "
                             "makes 80 executions a second on a loaded 2-core machine)")
    parser.add_argument("--seconds-other", type=int, default=600,
                        help="time limit of the pcap and decoder targets (default 600)")
    parser.add_argument("--runs", type=int, default=1_000_000,
                        help="executions after which a target stops (default 1000000)")
    parser.add_argument("--min-runs", type=int, default=1_000_000,
                        help="executions each parser must reach (default 1000000; 0: none)")
    parser.add_argument("--scale", type=int, default=4096,
                        help="divide the parsers' byte limits by this (default 4096; 1: real)")
    parser.add_argument("--out", type=Path, default=Path("fuzz-out"),
                        help="corpora, findings and logs (default ./fuzz-out)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="targets fuzzed at once, one process each (default 1)")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    return parser.parse_args(argv)


def _kind(target: str) -> str:
    return target if target in _targets.OTHER_TARGETS else "parser"


def _seeds_for(target: str) -> list[bytes]:
    kind = _kind(target)
    if kind == "pcap":
        return _seeds.pcap_seeds(MAX_LEN["pcap"])
    if kind == "decoder":
        return _seeds.decoder_seeds()
    return _seeds.parser_seeds(target, MAX_LEN["parser"])


#: libFuzzer's last status line, e.g. "#1000000 DONE cov: 812 ft: 3120 corp: 410/61Kb ...".
_STATUS = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/", re.M)
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.M)


def run_target(target: str, args: argparse.Namespace) -> dict[str, Any]:
    """Fuzz one target in a child process; its JSON object."""
    workdir = (args.out / target).resolve()
    seconds = args.seconds if _kind(target) == "parser" else args.seconds_other
    seeds_dir, corpus = workdir / "seeds", workdir / "corpus"
    shutil.rmtree(seeds_dir, ignore_errors=True)
    shutil.rmtree(workdir / "findings", ignore_errors=True)
    corpus.mkdir(parents=True, exist_ok=True)
    seeds = _seeds.write(seeds_dir, _seeds_for(target))
    libfuzzer = [
        str(corpus), str(seeds_dir), f"-runs={args.runs}", f"-max_total_time={seconds}",
        f"-max_len={MAX_LEN[_kind(target)]}", f"-timeout={HANG_S}", "-rss_limit_mb=2048",
        "-print_final_stats=1", f"-artifact_prefix={workdir}/findings/",
    ]  # fmt: skip
    (workdir / "findings").mkdir()
    log = workdir / "libfuzzer.log"
    start = time.monotonic()
    with open(log, "w") as err:
        child = subprocess.run(
            [sys.executable, "-m", "fuzzing._child", target, str(workdir), str(args.scale),
             "--", *libfuzzer],
            stdout=err, stderr=subprocess.STDOUT, timeout=seconds + 600, check=False,
            cwd=Path(__file__).resolve().parent.parent,
        )  # fmt: skip
    seconds = time.monotonic() - start
    text = log.read_text(errors="replace")
    stats = {name: int(value) for name, value in _STAT.findall(text)}
    status = _STATUS.findall(text)
    executions = stats.get("number_of_executed_units", int(status[-1][0]) if status else 0)
    findings = sorted(p.name for p in (workdir / "findings").iterdir()
                      if p.suffix != ".txt" and p.name != "log.jsonl")  # fmt: skip
    result: dict[str, Any] = {
        "target": target,
        "executions": executions,
        "seconds": round(seconds, 1),
        "executions_per_s": round(executions / seconds) if seconds else 0,
        "coverage": {"edges": int(status[-1][1]) if status else None,
                     "features": int(status[-1][2]) if status else None},
        "corpus": int(status[-1][3]) if status else None,
        "seeds": seeds,
        "peak_rss_mb": stats.get("peak_rss_mb"),
        "crashes": len(findings),
        "findings": [str(workdir / "findings" / name) for name in findings],
        "exit_code": child.returncode,
        "log": str(log),
    }
    if _kind(target) == "parser":
        result["reached_min_runs"] = executions >= args.min_runs
    if child.returncode != 0 and not findings:
        result["error"] = text[-2000:]
    return result


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    names = _targets.names()
    if args.list:
        print("\n".join(names))
        return 0
    unknown = sorted(set(args.targets) - set(names))
    if unknown:
        print(f"unknown targets: {', '.join(unknown)} (have {', '.join(names)})", file=sys.stderr)
        return 2
    compiled = [m for m in MUST_BE_PURE if not _targets.is_pure(m)]
    if compiled:
        print(f"compiled modules ({', '.join(compiled)}) cannot be instrumented: run from a "
              "source checkout or an editable install", file=sys.stderr)  # fmt: skip
        return 2
    start, results = time.monotonic(), []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_target, target, args) for target in args.targets or names]
        for future in as_completed(futures):
            results.append(future.result())
            print(json.dumps(results[-1]), flush=True)
    with open("/proc/loadavg") if os.path.exists("/proc/loadavg") else open(os.devnull) as f:
        load = f.read().split()[:3]
    short = [r["target"] for r in results if r.get("reached_min_runs") is False]
    summary = {
        "summary": True,
        "targets": len(results),
        "executions": sum(r["executions"] for r in results),
        "seconds": round(time.monotonic() - start, 1),
        "crashes": sum(r["crashes"] for r in results),
        "errors": [r["target"] for r in results if "error" in r],
        "below_min_runs": short,
        "scale": args.scale,
        "loadavg": [float(x) for x in load],
    }
    print(json.dumps(summary), flush=True)
    return 1 if summary["crashes"] or short or summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

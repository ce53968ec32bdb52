"""One target under atheris: ``python -m fuzzing._child TARGET WORKDIR SCALE -- LIBFUZZER_ARGS``.

libFuzzer ends the process itself (when its ``-runs`` or ``-max_total_time``
is reached), so what the parent learns comes from libFuzzer's final
statistics on stderr and from the files this process leaves in WORKDIR:
``findings/`` (one input and one traceback per distinct failure, and
``log.jsonl``, a line per failure seen) and ``limits.json`` (the limits in
force).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import traceback
from pathlib import Path

import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]

#: Findings written to log.jsonl at most (the distinct ones are all kept as files).
MAX_LOGGED = 1000


def _signature(kind: str, exc: BaseException | None) -> str:
    """What tells two failures apart: the kind, the exception's type and the
    innermost libtrace frame (or the innermost frame) it came from."""
    if exc is None:
        return kind
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/libtrace/" in f.filename] or frames
    where = f"{ours[-1].filename.rsplit('/libtrace/', 1)[-1]}:{ours[-1].lineno}" if ours else "?"
    return f"{kind}:{type(exc).__name__}:{where}"


class Findings:
    """Failures saved under ``directory``: the first input of each signature."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.seen: set[str] = set()
        self.logged = 0

    def add(self, kind: str, data: bytes, exc: BaseException | None, detail: str) -> None:
        signature = _signature(kind, exc)
        name = f"{kind}-{hashlib.sha1(signature.encode()).hexdigest()[:12]}"
        if signature not in self.seen:
            self.seen.add(signature)
            (self.directory / f"{name}.bin").write_bytes(data)
            text = "".join(traceback.format_exception(exc)) if exc is not None else ""
            (self.directory / f"{name}.txt").write_text(f"{signature}\n{detail}\n\n{text}")
        if self.logged < MAX_LOGGED:
            self.logged += 1
            with open(self.directory / "log.jsonl", "a") as log:
                log.write(json.dumps({"finding": name, "signature": signature,
                                      "detail": detail[:200]}) + "\n")  # fmt: skip


def main(argv: list[str]) -> None:
    name, workdir, scale = argv[1], Path(argv[2]), int(argv[3])
    libfuzzer_args = argv[argv.index("--") + 1:]
    # The third-party code a target runs through is instrumented too where it
    # decides what libtrace sees (dpkt for the reader); for the parsers only
    # libtrace is: instrumentation triples the cost of every line it covers.
    include = ["libtrace", "dpkt"] if name == "pcap" else ["libtrace"]
    with atheris.instrument_imports(include=include):
        import libtrace.parsers
        import libtrace.pcap
        import libtrace.tracer.events  # noqa: F401
    from . import _targets

    limits = _targets.scale_limits(scale)
    (workdir / "limits.json").write_text(json.dumps(limits))
    target = _targets.make(name, workdir)
    findings = Findings(workdir / "findings")
    clock = time.process_time

    def attempt(data: bytes) -> float:
        """CPU seconds the target took; a failure is saved as a finding."""
        start = clock()
        try:
            target(data)
        except Exception as exc:
            findings.add("crash", data, exc, f"{type(exc).__name__}: {exc}")
        return clock() - start

    def one_input(data: bytes) -> None:
        took = attempt(data)
        if took > _targets.TIME_BOUND_S:
            again = min(attempt(data), attempt(data))  # not the machine's hiccup
            if again > _targets.TIME_BOUND_S:
                findings.add("slow", data, None, f"{again * 1000:.0f} ms of CPU for "
                                                  f"{len(data)} bytes of input")  # fmt: skip

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)

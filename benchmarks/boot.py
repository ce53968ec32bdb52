"""Boot-to-first-test and whole-cell seconds per kernel under QEMU (TCG here).

Boots each kernel ``--rounds`` times with a trivial payload and reports the
time from QEMU's start to the guest's /init (``boot_s``) and to the payload's
end (``wall_s``).  With ``--report DIR`` it also reads the whole-cell seconds
of a finished sweep (``wall_s`` of each row of ``DIR/matrix.json``).
Targets (issue 5): boot ≤ 5 s, the default sweep ≤ 10 minutes on 2 cores.

    python3 -m benchmarks.boot [--kernels debian-5.10,debian-6.1] [--report results/matrix]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from libtrace.vm import kernels, qemu

from ._common import emit, log

DEFAULT_KERNELS = ("debian-5.10", "debian-6.1", "debian-6.12")
BOOT_TARGET_S = 5.0
SWEEP_TARGET_S = 600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", default=",".join(DEFAULT_KERNELS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--report", type=Path, help="a sweep's report directory")
    parser.add_argument("--quick", action="store_true", help="one kernel, one round")
    args = parser.parse_args()
    specs = args.kernels.split(",")[:1] if args.quick else args.kernels.split(",")
    rounds = 1 if args.quick else args.rounds
    results = {}
    for spec in specs:
        kernel = kernels.resolve(spec, progress=log)
        runs = []
        for i in range(rounds):
            result = qemu.run(kernel, "true", timeout_s=120)
            log(f"{spec} round {i + 1}: {result.verdict.name} boot {result.boot_s} s "
                f"wall {result.wall_s:.2f} s")
            runs.append(result)
        boots = [r.boot_s for r in runs if r.boot_s is not None]
        results[spec] = {
            "release": kernel.release,
            "accel": qemu.choose_accel(),
            "verdicts": [r.verdict.name.lower() for r in runs],
            "boot_s": boots,
            "boot_s_median": statistics.median(boots) if boots else None,
            "wall_s_median": statistics.median(r.wall_s for r in runs),
        }
    out: dict[str, object] = {"benchmark": "boot", "kernels": results,
                              "boot_target_s": BOOT_TARGET_S}
    if args.report:
        data = json.loads((args.report / "matrix.json").read_text())
        cells = {k["name"]: k["wall_s"] for k in data["kernels"] if k.get("available")}
        out["cell_wall_s"] = cells
        out["sweep_target_s"] = SWEEP_TARGET_S
    emit(out)


if __name__ == "__main__":
    main()

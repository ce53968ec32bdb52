"""The GitHub Actions workflow is valid against the workflow schema.

It cannot run here; check-jsonschema's vendored copy of the schemastore
schema for workflows is the oracle.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

WORKFLOW = Path(__file__).parents[2] / ".github" / "workflows" / "matrix.yml"


def test_workflow_matches_the_schema():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(WORKFLOW),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflow_sweeps_the_ci_matrix_and_merges():
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    assert "--emit-ci-matrix" in jobs["plan"]["steps"][-1]["run"]
    assert jobs["sweep"]["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.kernels) }}"
    assert any("matrix merge" in step.get("run", "") for step in jobs["merge"]["steps"])

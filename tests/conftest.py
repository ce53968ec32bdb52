"""Shared fixtures and the skip rules of the markers (see pyproject.toml)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings

from .tracing import Peer

# Fuzz depth is a Hypothesis profile, picked by HYPOTHESIS_PROFILE (tox -e fuzz).
settings.register_profile("default", max_examples=200, deadline=None)
settings.register_profile(
    "fuzz", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reasons = {}
    if os.geteuid() != 0:
        reasons["root"] = "needs root: run the suite as root"
        reasons["bpf"] = "loads BPF programs: needs root (or CAP_BPF + CAP_PERFMON)"
    if shutil.which("qemu-system-x86_64") is None:
        reasons["qemu"] = "needs qemu-system-x86 (scripts/install-deps.sh installs it)"
    for item in items:
        for marker, reason in reasons.items():
            if marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


#: Under ``LIBTRACE_STRICT_SKIPS=1`` (``.ci/run`` sets it) a skip whose reason is not a
#: missing privilege (the "root" and "bpf" markers' "needs root") fails the run: CI
#: installs everything the tests need, so any other skip is a failure hidden (a tool
#: or a download missing), not a choice.
STRICT_SKIPS = os.environ.get("LIBTRACE_STRICT_SKIPS") == "1"


def _skip_reason(report: pytest.TestReport) -> str:
    return str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else ""


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if not STRICT_SKIPS or reporter is None:
        return
    hidden = [f"{r.nodeid}: {_skip_reason(r)}" for r in reporter.stats.get("skipped", [])
              if "needs root" not in _skip_reason(r)]  # fmt: skip
    if hidden:
        reporter.write_line(f"LIBTRACE_STRICT_SKIPS: {len(hidden)} skipped for a reason that "
                            "is not a missing privilege:", red=True)  # fmt: skip
        for line in hidden:
            reporter.write_line(f"  {line}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def peer_factory() -> Iterator[Callable[..., Peer]]:
    peers: list[Peer] = []

    def make(scenario: str, port: int, *extra: str) -> Peer:
        peer = Peer(scenario, port, *extra)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.finish()
        if peer.proc.poll() is None:
            peer.proc.kill()

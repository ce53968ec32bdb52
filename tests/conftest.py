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

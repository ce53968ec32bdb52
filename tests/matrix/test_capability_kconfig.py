"""Every column's kernel needs are in the fragment of built kernels.

A column whose tests need an option the fragment lacks fails on every kernel
built with ``libtrace kernels build`` for a reason that is the harness's, not
the kernel's (tcpdump without CONFIG_PACKET failed every check_* column so).
"""

from __future__ import annotations

import pytest

from libtrace.matrix.capabilities import Capability, capabilities
from libtrace.vm._kconfig import FRAGMENT


@pytest.mark.parametrize("capability", capabilities(), ids=lambda c: c.name)
def test_the_fragment_has_what_the_column_needs(capability: Capability) -> None:
    missing = [option for option in capability.needs if FRAGMENT.get(option) != "y"]
    assert missing == []


def test_the_check_columns_need_packet_sockets() -> None:
    checks = [c for c in capabilities() if c.name.startswith("check_")]
    assert len(checks) == 8 and all("PACKET" in c.needs for c in checks)

"""TracerConfig's validation: a bad value is a ConfigError on construction."""

from __future__ import annotations

import pytest

from libtrace.errors import ConfigError
from libtrace.tracer.tracer import DEFAULT_WAKEUP_BYTES, TracerConfig


@pytest.mark.parametrize("wakeup_bytes", [0, -1])
def test_a_wakeup_threshold_below_one_byte_is_refused(wakeup_bytes: int) -> None:
    # Negative, it would wrap in the perf event's unsigned watermark: never woken.
    with pytest.raises(ConfigError, match=f"wakeup bytes must be at least 1, not {wakeup_bytes}"):
        TracerConfig(wakeup_bytes=wakeup_bytes)


def test_the_default_and_one_byte_are_taken() -> None:
    assert TracerConfig().wakeup_bytes == DEFAULT_WAKEUP_BYTES
    assert TracerConfig(wakeup_bytes=1).wakeup_bytes == 1

"""Waiting in tests: poll the condition waited for, under a deadline, never a fixed sleep.

(:func:`libtrace.services._clients.wait_for` is the traffic scripts' version: it
raises a ServiceError worded for traffic; a test wants an assertion failure.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Seconds between two looks at the condition.
INTERVAL_S = 0.05


def wait_for(condition: Callable[[], T], what: str, timeout: float = 10.0) -> T:
    """Call ``condition`` until it returns something true, and return that.

    The deadline only stops a wait that would never end: a slow machine
    waits longer, it does not fail.

    Raises:
        AssertionError: ``what`` was still not true after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still not so after {timeout:g} s")
        time.sleep(INTERVAL_S)

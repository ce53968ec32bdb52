"""Watch a BpfObject method while a real tracer runs: each call still goes through."""

from __future__ import annotations

from typing import Any

import pytest

from libtrace.tracer import _libbpf


def calls_of(monkeypatch: pytest.MonkeyPatch, method: str) -> list[Any]:
    """The argument of every call of ``BpfObject.<method>`` (one-argument methods),
    in call order, from now until the test ends; the real method runs each time."""
    calls: list[Any] = []
    real = getattr(_libbpf.BpfObject, method)

    def recording(self: _libbpf.BpfObject, arg: Any) -> Any:
        calls.append(arg)
        return real(self, arg)

    monkeypatch.setattr(_libbpf.BpfObject, method, recording)
    return calls

"""The fuzz targets: what an input means to each, and the invariants each checks.

A target is a function of one input that returns normally for an input
handled as the contract says (the target's own errors included) and raises
otherwise: any other exception, or :class:`InvariantError` for a broken
invariant (see the package's docstring for the list).  libtrace is imported
only inside :func:`make`, which the child process calls under atheris's
instrumentation.
"""

from __future__ import annotations

import enum
import json
import sys
import types
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import _script

#: CPU seconds one input may take (twice in a row) before it is a finding.
TIME_BOUND_S = 0.1
#: Every how many inputs a parser's retained object graph is measured.
RETAINED_EVERY = 64
#: Bytes a parser may retain beyond four times MAX_BUFFER_BYTES: the Python
#: objects around the bytes (messages kept, marks, tables), which do not scale.
RETAINED_SLACK = 64 * 1024
#: The limits ``--scale`` divides (bytes) with the smallest value each may take.
SCALED_BYTES = ("MAX_BUFFER_BYTES", "MAX_MESSAGE_BYTES", "MAX_RESYNC_TAIL", "MAX_HTTP_HEAD_BYTES",
                "MAX_H2_FRAME_BYTES", "MAX_HPACK_TABLE_BYTES", "MAX_HPACK_HEADER_LIST_BYTES",
                "MAX_RESP_LINE_BYTES")  # fmt: skip
SCALED_COUNTS = ("MAX_HEADERS", "MAX_H2_STREAMS")
MIN_SCALED_BYTES, MIN_SCALED_COUNT = 64, 4
#: The targets that are not parsers.
OTHER_TARGETS = ("pcap", "decoder")

Target = Callable[[bytes], None]


class InvariantError(AssertionError):
    """The target broke one of its invariants."""


def scale_limits(factor: int) -> dict[str, int]:
    """Divide the parsers' limits by ``factor`` in every loaded libtrace module
    that holds them (they are looked up at run time); returns the new values."""
    from libtrace.parsers import _limits

    values = {name: max(getattr(_limits, name) // factor, MIN_SCALED_BYTES)
              for name in SCALED_BYTES}  # fmt: skip
    values |= {name: max(getattr(_limits, name) // factor, MIN_SCALED_COUNT)
               for name in SCALED_COUNTS}  # fmt: skip
    if factor == 1:
        return {name: getattr(_limits, name) for name in values}
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("libtrace"):
            for name, value in values.items():
                if isinstance(getattr(module, name, None), int):
                    setattr(module, name, value)
    return values


def max_fed() -> int:
    """Bytes a parser target feeds at most in one run: past the buffer bound twice over."""
    from libtrace.parsers import _limits

    return 2 * _limits.MAX_BUFFER_BYTES + 1024


def retained(root: object) -> int:
    """Bytes of the object graph ``root`` holds (shared objects such as classes,
    modules, functions and enum members not counted)."""
    seen: set[int] = set()
    stack: list[Any] = [root]
    total = 0
    skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
            types.MethodType, enum.Enum)  # fmt: skip
    while stack:
        obj = stack.pop()
        if obj is None or id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, (str, bytes, bytearray, int, float, memoryview)):
            continue
        if isinstance(obj, dict):
            stack += obj.keys()
            stack += obj.values()
        elif isinstance(obj, (list, tuple, set, frozenset, deque)):
            stack += obj
        else:
            if hasattr(obj, "__dict__"):
                stack.append(vars(obj))
            for cls in type(obj).__mro__:
                for slot in getattr(cls, "__slots__", ()):
                    stack.append(getattr(obj, slot, None))
    return total


def parser_target(protocol: str) -> Target:
    """Feed a script (:mod:`fuzzing._script`) to a new parser of ``protocol``."""
    from libtrace.parsers import Desync, Direction, Message, _limits, registry

    cls = registry.PARSERS[protocol]
    runs = 0
    base = retained(cls(transport=cls.transports[0]))

    def check(parser: Any, events: Sequence[object]) -> None:
        for event in events:
            if isinstance(event, Message):
                json.dumps(event.fields())
                hash(event.key)
                _ = (event.outcome, event.expects_response, event.direction)
            elif not isinstance(event, Desync):
                raise InvariantError(f"event of type {type(event).__name__}")
        for direction in Direction:
            held = parser.buffered_in(direction)
            if held > _limits.MAX_BUFFER_BYTES:
                raise InvariantError(f"{held} bytes buffered in {direction} after its events "
                                     f"were pulled (limit {_limits.MAX_BUFFER_BYTES})")

    def run(data: bytes) -> None:
        nonlocal runs
        runs += 1
        flags, ops = _script.parse(data, max_fed())
        udp = (flags & _script.UDP and "udp" in cls.transports) or "tcp" not in cls.transports
        parser = cls(transport="udp" if udp else "tcp", mid_stream=bool(flags & _script.MID_STREAM))
        ts = 0
        for op in ops:
            ts += 1
            if op.kind == _script.GAP:
                parser.feed_gap(op.direction, op.size, ts)
            else:
                parser.feed(op.direction, op.data, ts)
            check(parser, parser.events())
        if runs % RETAINED_EVERY == 0:
            held, bound = retained(parser) - base, 4 * _limits.MAX_BUFFER_BYTES + RETAINED_SLACK
            if held > bound:
                raise InvariantError(f"the parser retains {held} bytes more than a new one "
                                     f"(bound: 4 x MAX_BUFFER_BYTES + {RETAINED_SLACK})")
        if not flags & _script.OPEN_AT_END:
            parser.feed("request", b"", ts + 1)
            parser.feed("response", b"", ts + 1)
            check(parser, parser.events())
            if parser.buffered():
                raise InvariantError(f"{parser.buffered()} bytes held after both directions ended")

    return run


def pcap_target(workdir: Path) -> Target:
    """The input as a capture file, read and analysed into records."""
    from libtrace.pcap import PcapAnalyzer, PcapError, read_packets

    path = str(workdir / "input.pcap")

    def run(data: bytes) -> None:
        with open(path, "wb") as file:
            file.write(data)
        analyzer = PcapAnalyzer()
        records = []
        try:
            for packet in read_packets(path):
                records += analyzer.packet(packet)
        except PcapError:
            pass
        records += analyzer.finish()
        for record in records:
            json.dumps(record.to_json(headers=True))

    return run


def decoder_target() -> Target:
    """The input as one ring-buffer record, decoded in Python and, where this
    machine compiles it, by the C decoder, which must agree."""
    from libtrace.tracer import events

    native = events.native_decoder()

    def decoded(decode: Callable[[bytes], Any], data: bytes) -> Any:
        try:
            return decode(data)
        except events.DecodeError:
            return None

    def run(data: bytes) -> None:
        python = decoded(events.decode_python, data)
        if python is not None:
            json.dumps(python.to_json())
        if native is not None and decoded(events.decode, data) != python:
            raise InvariantError("the C decoder and decode_python disagree")

    return run


def names() -> list[str]:
    """Every target: the registered parsers, then the others."""
    from libtrace.parsers import registry

    return [*registry.PARSERS, *OTHER_TARGETS]


def make(name: str, workdir: Path) -> Target:
    """The target called ``name``."""
    if name == "pcap":
        return pcap_target(workdir)
    if name == "decoder":
        return decoder_target()
    return parser_target(name)


def is_pure(module_name: str) -> bool:
    """Whether a module runs from its Python source (mypyc leaves no bytecode to instrument)."""
    import importlib.util

    spec = importlib.util.find_spec(module_name)
    return spec is not None and str(spec.origin).endswith(".py")


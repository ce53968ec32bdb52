"""The frozen dataclasses whose ``__init__`` is written by hand (libtrace/frozen.py):
the flow chunks, the records and every protocol's messages.

Run on the pure modules, these check the ``__init__`` that ``hand_init`` puts
back; run by tests/test_compiled.py on the installed wheel, the hand-written
ones that mypyc compiled: in both, every field gets the value given for it
(by keyword and, where the class allows, by position), the defaults are the
dataclass's, a message built unparsed is validated, and the instance stays
frozen, equal and hashable by value.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import itertools
import sys
from pathlib import Path
from typing import Any

import pytest

from libtrace.errors import ProtocolError
from libtrace.flows import Chunk, FlowRecord
from libtrace.flows.offsets import StreamChunk
from libtrace.frozen import HAND_INIT
from libtrace.parsers import Record
from libtrace.parsers._events import Message, Status
from libtrace.parsers._redis import RedisRequest
from libtrace.records import Container, LiveRecord
from libtrace.tracer.events import Direction

ROOT = Path(__file__).resolve().parents[2]
_REQUEST = RedisRequest(ts_ns=5, size=14, command="GET", args=("k",), arg_count=1, _parsed=True)
_RECORD = Record(protocol="redis", ts_ns=5, latency_ns=7, status=Status.OK, request=_REQUEST)
#: A value for every field of the classes that are not messages, none its default.
SAMPLES: dict[type, dict[str, Any]] = {
    Chunk: {"ts_ns": 3, "data": b"ab", "gap": 4},
    StreamChunk: {"key": (1, 2, Direction.EGRESS), "offset": 9, "data": b"x", "gap": 2,
                  "event": None},
    Record: {"protocol": "redis", "ts_ns": 1, "latency_ns": 2, "status": Status.SERVER_ERROR,
             "request": _REQUEST, "response": _REQUEST},
    FlowRecord: {"exchange": _RECORD, "client": "1.2.3.4:5", "server": "6.7.8.9:10"},
    LiveRecord: {"exchange": _RECORD, "client": "c:1", "server": "s:2", "pid": 7, "comm": "redis",
                 "side": "server", "tls": True, "container": Container("f" * 64, "n", "i")},
}  # fmt: skip
_NUMBERS = itertools.count(1)


def _annotations(cls: type) -> dict[str, str]:
    """Each field's type as the checkout's source spells it (the compiled build
    erases ``str | None`` to ``type``), ``| None`` left out."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        path = ROOT / (klass.__module__.replace(".", "/") + ".py")
        tree = ast.parse(path.read_text())
        body = next(node for node in tree.body
                    if isinstance(node, ast.ClassDef) and node.name == klass.__name__)  # fmt: skip
        for node in body.body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                out[node.target.id] = ast.unparse(node.annotation).removesuffix(" | None")
    return out


def _message_sample(cls: type) -> dict[str, Any]:
    """A value of its declared type for every field of a message class, each
    unlike its default and (but for booleans) unlike the others."""
    module = sys.modules[cls.__module__]
    kinds = _annotations(cls)
    out: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        kind = kinds[field.name]
        named = getattr(module, kind, None)
        if kind == "int":
            value: Any = next(_NUMBERS)
        elif kind == "str":
            value = f"{field.name}-{next(_NUMBERS)}"
        elif kind == "bool":
            value = field.default is not True
        elif kind == "tuple[str, ...]":
            value = (f"{field.name}-{next(_NUMBERS)}",)
        elif kind == "tuple[int, ...]":
            value = (next(_NUMBERS),)
        elif kind.startswith("tuple[dict"):
            value = ({field.name: next(_NUMBERS)},)
        elif kind.startswith("tuple[tuple[str") or kind == "Headers":
            value = ((field.name, f"v{next(_NUMBERS)}"),)
        elif isinstance(named, type) and issubclass(named, enum.Enum):
            value = [member for member in named if member != field.default][-1]
        else:
            raise AssertionError(f"{cls.__name__}.{field.name}: no sample for {field.type}")
        out[field.name] = value
    return out


SAMPLES.update({cls: _message_sample(cls) for cls in HAND_INIT if issubclass(cls, Message)})
MESSAGES = [cls for cls in SAMPLES if issubclass(cls, Message)]


def _build(cls: type, values: dict[str, Any]) -> Any:
    extra = {"_parsed": True} if issubclass(cls, Message) else {}
    return cls(**values, **extra)


def test_every_hand_init_class_has_a_sample_of_every_field() -> None:
    assert set(HAND_INIT) == set(SAMPLES)
    for cls, values in SAMPLES.items():
        assert set(values) == {field.name for field in dataclasses.fields(cls)}, cls


@pytest.mark.parametrize("cls", SAMPLES, ids=lambda cls: cls.__name__)
def test_each_field_gets_its_value(cls: type) -> None:
    values = SAMPLES[cls]
    made = _build(cls, values)
    assert {name: getattr(made, name) for name in values} == values
    if not any(field.kw_only for field in dataclasses.fields(cls)):
        by_position = cls(*values.values())
        assert by_position == made
        assert hash(by_position) == hash(made)


@pytest.mark.parametrize("cls", SAMPLES, ids=lambda cls: cls.__name__)
def test_defaults_are_the_dataclass_ones(cls: type) -> None:
    fields = dataclasses.fields(cls)
    defaulted = {f.name for f in fields if f.default is not dataclasses.MISSING}
    made = _build(cls, {k: v for k, v in SAMPLES[cls].items() if k not in defaulted})
    for field in fields:
        if field.name in defaulted:
            assert getattr(made, field.name) == field.default, field.name


@pytest.mark.parametrize("cls", SAMPLES, ids=lambda cls: cls.__name__)
def test_instances_stay_frozen(cls: type) -> None:
    values = SAMPLES[cls]
    made = _build(cls, values)
    name, value = next(iter(values.items()))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, name, value)
    other = 1000 if isinstance(value, int) else value
    extra = {"_parsed": True} if issubclass(cls, Message) else {}
    changed = dataclasses.replace(made, **{name: other}, **extra)
    assert getattr(changed, name) == other
    assert (changed == made) == (other == value)


def test_every_protocol_s_messages_are_hand_built() -> None:
    from libtrace.parsers import PARSERS

    protocols = {_build(cls, SAMPLES[cls]).protocol for cls in MESSAGES}
    assert protocols == set(PARSERS)


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda cls: cls.__name__)
def test_a_message_built_unparsed_is_validated(cls: type) -> None:
    with pytest.raises(ProtocolError):
        cls(**{**SAMPLES[cls], "ts_ns": -1})

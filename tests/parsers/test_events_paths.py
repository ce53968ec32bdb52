"""The event types' own behaviour, apart from any protocol: Direction.other, the
NEED_DATA singleton, a Message's defaults and validation, and how fields() makes
values JSON-ready."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pytest

from libtrace.parsers import NEED_DATA, Direction, MalformedError, Message, Status
from libtrace.parsers._events import _NeedData


def test_direction_other_is_the_opposite_way() -> None:
    assert Direction.REQUEST.other is Direction.RESPONSE
    assert Direction.RESPONSE.other is Direction.REQUEST


def test_need_data_is_one_falsy_singleton() -> None:
    assert _NeedData() is NEED_DATA
    assert not NEED_DATA and repr(NEED_DATA) == "NEED_DATA"


def test_a_bare_message_has_the_documented_defaults() -> None:
    message = Message(ts_ns=5, size=3)
    assert (message.protocol, message.direction, message.key, message.loose_key) == (
        "", Direction.REQUEST, None, None)
    assert message.expects_response and message.outcome is Status.OK
    assert message.fields() == {}


@pytest.mark.parametrize("kwargs", [{"ts_ns": -1}, {"ts_ns": 0, "size": -1}])
def test_a_user_built_message_may_not_have_a_negative_time_or_size(kwargs: dict) -> None:
    with pytest.raises(MalformedError, match="must not be negative"):
        Message(**kwargs)
    Message(**kwargs, _parsed=True)  # parsers skip the check: their values are their own


class Colour(enum.IntEnum):
    RED = 1


class Mood(enum.Enum):
    CALM = "calm"


class Opaque:
    """Not JSON-ready, and not something fields() knows how to make so."""


OPAQUE = Opaque()


@dataclass(frozen=True, kw_only=True)
class Sample(Message):
    colours: tuple[Colour, ...]
    nested: dict[int, object]
    raw: bytes
    other: object


def test_fields_make_nested_enums_bytes_and_keys_json_ready() -> None:
    sample = Sample(ts_ns=0, colours=(Colour.RED, Colour.RED), raw=b"caf\xc3\xa9 \xff",
                    nested={1: [Mood.CALM, b"x", 2], 2: (Colour.RED,)}, other=OPAQUE,
                    errors=("cut",))  # fmt: skip
    assert sample.fields() == {
        "colours": ["RED", "RED"],
        "nested": {"1": ["calm", "x", 2], "2": ["RED"]},
        "raw": "café \ufffd",
        "other": OPAQUE,  # passed through as it is
        "errors": ["cut"],
    }

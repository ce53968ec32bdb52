"""open_enum: unknown codes become UNKNOWN_<n> members, cached up to a bound; what
is not an int (or is a bool) is refused as by any IntEnum."""

from __future__ import annotations

import enum

import pytest

from libtrace.parsers import open_enum
from libtrace.parsers._enums import MAX_UNKNOWN_MEMBERS


def _fresh() -> type[enum.IntEnum]:
    @open_enum
    class Code(enum.IntEnum):
        KNOWN = 7

    return Code


def test_an_unknown_code_is_a_cached_member_named_for_its_value() -> None:
    code = _fresh()
    assert code(99).name == "UNKNOWN_99" and int(code(99)) == 99
    assert code(99) is code(99) and code(7) is code.KNOWN


@pytest.mark.parametrize("value", ["7", 7.5, None, True])
def test_what_is_not_an_int_is_refused(value: object) -> None:
    code = _fresh()
    with pytest.raises(ValueError):
        code(value)


def test_beyond_the_bound_new_codes_are_members_not_kept_and_the_cached_ones_stay() -> None:
    """(Beyond the bound a new code raised ValueError, which escaped the Kafka
    parser's resync once it had hunted through garbage of 1024 API keys.)"""
    code = _fresh()
    for value in range(1000, 1000 + MAX_UNKNOWN_MEMBERS):
        code(value)
    assert code(5000).name == "UNKNOWN_5000" and int(code(5000)) == 5000
    assert code(5000) is not code(5000)  # made again: the cache stays at its bound
    assert len(code.__dict__["_unknown_members_"]) == MAX_UNKNOWN_MEMBERS
    assert code(1000).name == "UNKNOWN_1000" and code(7) is code.KNOWN

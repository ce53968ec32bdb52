"""Open enums: protocol codes where an unknown value is a member, not a crash.

Kafka API keys, MySQL commands, MQTT packet types and the like are
``IntEnum``s decorated with :func:`open_enum`.  Looking up a value the enum
does not name creates (and caches, up to a bound) a pseudo-member called ``UNKNOWN_<value>``,
as dnspython's ``enum.py`` does, so records keep the number and the parser
keeps going::

    @open_enum
    class PacketType(enum.IntEnum):
        CONNECT = 1

    PacketType(99).name == "UNKNOWN_99"
"""

from __future__ import annotations

import enum
from typing import Any, TypeVar

E = TypeVar("E", bound=type[enum.IntEnum])

#: Pseudo-members cached per enum at most; beyond, each lookup of a new code
#: makes a member that is not kept.  (It raised ValueError once, which a
#: corrupt stream of ever-new codes does reach: Kafka's resync reads an API key
#: at every offset of the garbage it hunts through, and after 1024 of them the
#: error escaped next_event; found by tox -e fuzz-deep.)
MAX_UNKNOWN_MEMBERS = 1024


def open_enum(cls: E) -> E:
    """Give an IntEnum a ``_missing_`` that makes unknown values into members."""

    def _missing_(klass: Any, value: object) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        cache: dict[int, Any] = klass.__dict__.get("_unknown_members_", {})
        if value not in cache:
            member = int.__new__(klass, value)
            member._name_ = f"UNKNOWN_{value}"
            member._value_ = value
            if len(cache) >= MAX_UNKNOWN_MEMBERS:
                return member
            cache[value] = member
            type.__setattr__(klass, "_unknown_members_", cache)
        return cache[value]

    cls._missing_ = classmethod(_missing_)  # type: ignore[assignment]
    return cls

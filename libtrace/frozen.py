"""Frozen dataclasses that build themselves fast once compiled.

mypyc compiles a dataclass's methods, but not the ``__init__`` that the
``dataclasses`` module writes at import time: that one stays interpreted and,
for a frozen class, stores every field through ``object.__setattr__``, about
1.4 us for five fields on the machine of ``benchmarks/records.py``, against
0.07 us for an ``__init__`` of the class's own, whose ``self.field = value``
mypyc turns into direct slot writes.  Each record is made of six such objects
(two chunks, a request, a response, the record and its live form), whose
constructors were a third of the records pipeline; so the flow chunks, the
records and every protocol's messages write their ``__init__`` by hand,
storing each parameter in the field of its name and nothing else (a message
then runs its ``__post_init__``), and pass themselves to :func:`hand_init`.

Interpreted (a source checkout, a wheel built without mypyc), those stores
would meet the frozen class's ``__setattr__``, which refuses them: there
:func:`hand_init` puts back the ``__init__`` the ``dataclasses`` module writes
for the same fields, so the pure modules build as they always did.  Compiled,
it leaves the class alone.  ``tests/parsers/test_hand_init.py`` checks each
class in both builds against its fields.

The stores carry ``# type: ignore[misc]``: mypy takes a frozen field for a
read-only property, even in the class's own ``__init__``; and each such
``__init__`` ``# pragma: no cover``, since the coverage run (the pure modules)
never calls it: ``tests/test_compiled.py`` does, on the compiled wheel.
"""

from __future__ import annotations

import dataclasses
from types import FunctionType
from typing import Any

#: Every class passed to hand_init (for the tests).
HAND_INIT: list[type] = []


def hand_init(*classes: type) -> None:
    """Classes whose ``__init__`` is written by hand for mypyc: interpreted, each
    gets the one ``dataclasses`` writes instead."""
    for cls in classes:
        HAND_INIT.append(cls)
        if isinstance(cls.__dict__.get("__init__"), FunctionType):  # not compiled
            cls.__init__ = _dataclass_init(cls)  # type: ignore[misc]


def _dataclass_init(cls: type) -> Any:
    """The ``__init__`` that ``dataclasses`` writes for ``cls``.  It is made for an
    unslotted twin with the same fields and ``InitVar`` pseudo-fields; it stores
    through ``object.__setattr__``, which serves ``cls``'s slots as well, and
    calls the instance's ``__post_init__`` with the ``InitVar`` values."""
    real = dataclasses.fields(cls)
    pseudo = [
        f for f in cls.__dataclass_fields__.values()  # type: ignore[attr-defined]
        if f not in real and str(f.type).startswith(("InitVar", "dataclasses.InitVar"))
    ]  # fmt: skip
    spec = [(f.name, f.type, _like(f)) for f in real]
    spec += [(f.name, dataclasses.InitVar(object), _like(f)) for f in pseudo]
    namespace = {"__post_init__": cls.__post_init__} if hasattr(cls, "__post_init__") else {}
    twin = dataclasses.make_dataclass(cls.__name__, spec, frozen=True, namespace=namespace)
    return twin.__dict__["__init__"]


def _like(f: dataclasses.Field[Any]) -> Any:
    """A field with ``f``'s default and keyword-only flag."""
    return dataclasses.field(default=f.default, default_factory=f.default_factory,
                             kw_only=f.kw_only)  # fmt: skip

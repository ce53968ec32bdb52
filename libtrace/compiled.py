"""The modules a wheel carries compiled with mypyc, and which of them are.

Every event and every record passes through the parsers, the pairing layer,
the flow reassembly and the records pipeline; compiled by mypyc they run
two to four times as fast (``benchmarks/records.py``).  ``setup.py`` reads
:data:`MODULES` (by path: the package need not be importable at build time)
and compiles them where it can: a machine without a C compiler or without
mypy in the build environment, an editable install, or
``LIBTRACE_PURE_PYTHON=1`` at build time give a wheel of plain Python, which
is complete: the compiled modules are the same source, type-checked by mypy
strict.  A source checkout runs the pure modules; the test suite runs them,
and ``tests/test_compiled.py`` runs the parser and records tests again
against an installed compiled wheel.

mypyc's restrictions on these modules: no ``ClassVar`` in a dataclass (mypyc
takes it for a field, so class-level facts are properties); no subclass of a
builtin type other than ``Exception`` (the parsers' exceptions stay in the
pure ``parsers._errors``), nor of a third-party class (``_hpack`` subclasses
hpack's table: it stays pure, and the build would refuse it, since the build
environment does not have hpack to tell mypyc that its base is not native);
a class that Python code may subclass (a new protocol's ``StreamParser`` and
``Message``, a benchmark's recording parser) says so with
``mypyc_attr(allow_interpreted_subclasses=True)``; no monkeypatching of their
functions (module constants may be patched: they are looked up at run time
unless ``Final``); no generic dataclass (it fails at import: ``MemoryBudget``
is generic in a method instead).  A dataclass's ``__init__`` stays the
interpreted one ``dataclasses`` writes, so the classes built per event or per
record write their own (:mod:`libtrace.frozen`).
"""

from __future__ import annotations

import importlib
from typing import Final

#: Imported by setup.py from this file alone: keep it free of imports beyond
#: the standard library.
MODULES: Final = (
    "libtrace.parsers._base",
    "libtrace.parsers._cursor",
    "libtrace.parsers._dns",
    "libtrace.parsers._dubbo",
    "libtrace.parsers._enums",
    "libtrace.parsers._events",
    "libtrace.parsers.hessian2",
    "libtrace.parsers._http1",
    "libtrace.parsers._http2",
    "libtrace.parsers._kafka",
    "libtrace.parsers._kryo",
    "libtrace.parsers._limits",
    "libtrace.parsers._mqtt",
    "libtrace.parsers._mysql",
    "libtrace.parsers._redis",
    "libtrace.parsers.inference",
    "libtrace.parsers.pairing",
    "libtrace.flows.budget",
    "libtrace.flows.chunk",
    "libtrace.flows.conversation",
    "libtrace.flows.offsets",
    "libtrace.flows.tcp",
    "libtrace.records.live",
    "libtrace.tracer.no_btf",
    "libtrace.tracer.reorder",
    "libtrace.pcap._session",
)


def compiled_modules() -> tuple[str, ...]:
    """Those of :data:`MODULES` this interpreter runs compiled (an extension
    module rather than a ``.py`` file)."""
    out = []
    for name in MODULES:
        path = getattr(importlib.import_module(name), "__file__", None) or ""
        if not path.endswith(".py"):
            out.append(name)
    return tuple(out)

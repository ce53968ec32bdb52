"""The differential check: one scenario's records from the tracer and from the wire, compared.

``libtrace check SCENARIO`` runs a service of :mod:`libtrace.services` (a real
server and its deterministic client traffic), traces it and captures it with
tcpdump at the same time, parses the capture with ``libtrace pcap``'s parsers,
and compares the two multisets of records on their protocol fields::

    from libtrace.check import run_check

    result = run_check("redis", backend="process")
    result.ok            # agrees, nothing lost, containers attributed right
    result.sides         # per side: Difference(matched, only_left=trace, only_right=pcap)
    result.to_json()     # the full comparison

:func:`compare_sides` and :func:`protocol_key` are the comparison itself,
usable on any two lists of records; :func:`run_load` is the pipelined Redis
load run whose record count must equal the server's own.
"""

from ._capture import capture, during_capture
from ._compare import PROTOCOL_FIELDS, Difference, compare_sides, protocol_key, protocol_view
from ._errors import CheckError
from ._expected import VOLATILE_FIELDS, expected_key, expected_path, read_expected
from ._load import LoadResult, run_load
from ._result import CheckResult
from ._run import free_endpoint, run_check

__all__ = [
    "PROTOCOL_FIELDS",
    "VOLATILE_FIELDS",
    "CheckError",
    "CheckResult",
    "Difference",
    "LoadResult",
    "capture",
    "compare_sides",
    "during_capture",
    "expected_key",
    "expected_path",
    "free_endpoint",
    "protocol_key",
    "protocol_view",
    "read_expected",
    "run_check",
    "run_load",
]

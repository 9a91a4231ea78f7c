"""The broker's own counters ($SYS), read by the bridge and exported as metrics (apps/operations/metrics.py):
above all the messages it dropped because a client's queue was full, which nothing else would show."""

from __future__ import annotations

import logging

from apps.operations import metrics

logger = logging.getLogger(__name__)

GAUGES = {
    "$SYS/broker/publish/messages/dropped": metrics.MQTT_BROKER_DROPPED,
    "$SYS/broker/store/messages/count": metrics.MQTT_BROKER_STORED_MESSAGES,
    "$SYS/broker/store/messages/bytes": metrics.MQTT_BROKER_STORED_BYTES,
    "$SYS/broker/clients/connected": metrics.MQTT_BROKER_CLIENTS,
}
TOPICS = list(GAUGES)


def is_broker_topic(topic: str) -> bool:
    return topic.startswith("$SYS/")


def record(topic: str, payload: bytes) -> None:
    gauge = GAUGES.get(topic)
    if gauge is None:
        return
    try:
        gauge.set(float(payload))
    except ValueError:
        logger.warning("mqtt bridge: unexpected value on %s: %r", topic, payload[:50])

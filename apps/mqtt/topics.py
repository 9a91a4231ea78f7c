"""The topic tree: {root}/{device_id}/{kind}, root being MQTT_TOPIC_ROOT ("iot" unless set)."""

from __future__ import annotations

TELEMETRY = "telemetry"
HELLO = "hello"
STATUS = "status"
COMMAND_ACK = "command/ack"
OTA_STATUS = "ota/status"
COMMAND = "command"

# What devices publish and the bridge subscribes to.
INBOUND_KINDS = (TELEMETRY, HELLO, STATUS, COMMAND_ACK, OTA_STATUS)


def device_topic(root: str, device_id: str, kind: str) -> str:
    return f"{root}/{device_id}/{kind}"


def subscriptions(root: str, shared_group: str = "") -> list[str]:
    """The bridge's topic filters; with a group, MQTT 5 shared subscriptions, so that the broker hands each
    message to one of the bridges of the group."""
    prefix = f"$share/{shared_group}/" if shared_group else ""
    return [prefix + device_topic(root, "+", kind) for kind in INBOUND_KINDS]


def parse(topic: str, root: str) -> tuple[str, str] | None:
    """(device_id, kind) of an inbound topic under `root`, or None for any other topic."""
    prefix = f"{root}/"
    if not topic.startswith(prefix):
        return None
    device_id, _, kind = topic[len(prefix) :].partition("/")
    if not device_id or kind not in INBOUND_KINDS:
        return None
    return device_id, kind

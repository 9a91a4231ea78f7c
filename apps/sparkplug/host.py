"""The Sparkplug side of the MQTT bridge: its subscription, its STATE (birth and will) and the routing of one
spBv1.0/ message. The bridge keeps the connection, the micro-batch and the acknowledgements."""

from __future__ import annotations

import logging

import orjson
from django.conf import settings
from django.utils import timezone

from apps.mqtt.envelope import Envelope
from apps.mqtt.messages import Inbound, MessageRejected, Reason
from apps.mqtt.services import Checked
from apps.sparkplug import payloads, services

logger = logging.getLogger(__name__)

KIND = "sparkplug"
SUBSCRIPTION = f"{payloads.NAMESPACE}/#"


def is_sparkplug_topic(topic: str) -> bool:
    return settings.SPARKPLUG_ENABLED and topic.startswith(f"{payloads.NAMESPACE}/")


def state(online: bool) -> tuple[str, bytes]:
    """The host's STATE message (Sparkplug 3.0): retained, QoS 1, so edge nodes know whether it listens."""
    body = {"online": online, "timestamp": services.timestamp_ms(timezone.now())}
    return payloads.state_topic(settings.SPARKPLUG_HOST_ID), orjson.dumps(body)


def set_will(client) -> None:
    if settings.SPARKPLUG_ENABLED:
        topic, body = state(False)
        client.will_set(topic, body, qos=1, retain=True)


def on_connect(client) -> None:
    if settings.SPARKPLUG_ENABLED:
        client.subscribe([(SUBSCRIPTION, 1)])
        topic, body = state(True)
        client.publish(topic, body, qos=1, retain=True)


def message_route(message: Inbound, client) -> Checked | None:
    """The readings of a Sparkplug message as a Checked telemetry message for the micro-batch, or None when it
    carries none (births, deaths, a rebirth asked for). Raises MessageRejected for what cannot be decoded."""
    topic = payloads.topic_parse(message.topic)
    if topic is None:
        return None  # STATE of hosts, commands of other hosts: not for this host to read
    try:
        outcome = services.message_handle(topic, message.payload, received_at=message.received_at)
    except payloads.PayloadError as exc:
        raise MessageRejected(Reason.INVALID_MESSAGE, str(exc)) from None
    if outcome.rebirth:
        logger.info("sparkplug: %s from %s; asking for a rebirth", outcome.ignored, message.topic)
        client.publish(outcome.rebirth, payloads.rebirth_request(), qos=0)
    if outcome.device is None or not len(outcome.readings):
        return None
    return Checked(
        message=message, device=outcome.device, body={}, envelope=Envelope.unsigned(), readings=outcome.readings
    )

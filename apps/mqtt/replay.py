"""Replaying an MQTT dead letter (admin, Dead letters, "Replay"): the message goes through the bridge's checks
and handlers again, as of the moment it first arrived, so a message refused for a reason since put right (its
device was unknown or inactive, an error of ours) now has its effect. Its nonce is claimed as the bridge would,
so replaying it twice applies it once. The outcome is written on the dead letter (payload.last_replay).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils import timezone

from apps.deadletters.models import DeadLetter
from apps.mqtt import topics
from apps.mqtt.messages import MessageRejected, Repeated
from apps.mqtt.rejects import dead_letter_message
from apps.mqtt.services import DeviceDirectory, message_check, request_connectivity_check, state_apply, telemetry_store

logger = logging.getLogger(__name__)


def _apply(dead_letter: DeadLetter) -> str:
    message = dead_letter_message(dead_letter, topic_root=settings.MQTT_TOPIC_ROOT)
    if message is None:
        return "not replayable: only the start of the message was kept"
    try:
        checked = message_check(message, DeviceDirectory(ttl_s=0), topic_root=settings.MQTT_TOPIC_ROOT)
        if message.kind == topics.TELEMETRY:
            batch, _ = telemetry_store([checked])
            return f"stored as ingest batch {batch.pk}" if batch is not None else "already applied (its nonce was used)"
        state_apply(checked)
    except MessageRejected as rejected:
        return f"refused again: {rejected.reason}: {rejected.detail}"
    except Repeated:
        return "already applied (its nonce was used)"
    if message.kind == topics.STATUS:
        try:
            request_connectivity_check()
        except Exception:  # the beat sweep runs anyway; this only makes it sooner
            logger.warning("mqtt replay: could not queue a connectivity check", exc_info=True)
    return "applied"


def dead_letter_replay(*, dead_letter_id: int) -> str:
    """Replay one MQTT dead letter; returns (and records) what became of it. A missing one is a no-op."""
    dead_letter = DeadLetter.objects.filter(pk=dead_letter_id, source="mqtt").first()
    if dead_letter is None:
        return "gone"
    outcome = _apply(dead_letter)
    payload = dict(dead_letter.payload or {})
    payload["last_replay"] = {"at": timezone.now().isoformat(), "outcome": outcome}
    DeadLetter.objects.filter(pk=dead_letter.pk).update(payload=payload)
    logger.info("mqtt replay of dead letter %s: %s", dead_letter.pk, outcome)
    return outcome

"""Dead letters of messages the bridge cannot use: kept for staff to look at and replay, without letting a
flood of junk fill the table.

- Rate: at most MQTT_DEAD_LETTERS_PER_DEVICE_PER_MINUTE per (device, reason) and MQTT_DEAD_LETTERS_PER_MINUTE
  in all. The rest are counted (telemetry_mqtt_dead_letters_suppressed_total{reason}), and the next dead
  letter kept for the same device and reason says how many were left out before it.
- Size: a message that might be good later (unknown or inactive device, an error of ours) is kept whole up to
  MQTT_DEAD_LETTER_MAX_BYTES, so it can be replayed; junk (not JSON, malformed, a bad signature, stale, a
  replay) only its first KiB, enough to see what it was. A truncated message cannot be replayed.
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from datetime import datetime

from django.conf import settings

from apps.deadletters.models import DeadLetter
from apps.deadletters.services import deadletter_record
from apps.mqtt import topics
from apps.mqtt.messages import Inbound, Reason
from apps.operations import metrics

JUNK_REASONS = frozenset(
    {Reason.INVALID_JSON, Reason.INVALID_MESSAGE, Reason.BAD_SIGNATURE, Reason.STALE, Reason.REPLAYED}
)
JUNK_MAX_BYTES = 1024
UNKNOWN_DEVICE_KEY = "?"  # one budget for every device id the backend does not know (anyone can make them up)


class DeadLetterBudget:
    """How many dead letters may still be kept this minute, per (device, reason) and in all."""

    def __init__(self, *, per_key: int | None = None, total: int | None = None, clock=time.monotonic) -> None:
        self.per_key = per_key or settings.MQTT_DEAD_LETTERS_PER_DEVICE_PER_MINUTE
        self.total = total or settings.MQTT_DEAD_LETTERS_PER_MINUTE
        self.clock = clock
        self._minute = -1
        self._kept: Counter = Counter()
        self._suppressed: Counter = Counter()  # per key, until one is kept again

    def take(self, device_key: str, reason: str) -> int | None:
        """None when this one is left out; otherwise how many like it were left out before it."""
        minute = int(self.clock() // 60)
        if minute != self._minute:
            self._minute = minute
            self._kept.clear()
        key = (device_key, reason)
        if self._kept[key] >= self.per_key or self._kept.total() >= self.total:
            self._suppressed[key] += 1
            metrics.MQTT_DEAD_LETTERS_SUPPRESSED.labels(reason).inc()
            return None
        self._kept[key] += 1
        return self._suppressed.pop(key, 0)


def dead_letter_record(
    message: Inbound,
    *,
    reason: str,
    detail: str,
    errors: dict | None = None,
    traceback: str = "",
    suppressed_before: int = 0,
) -> DeadLetter:
    """Keep a message the bridge could not use, with why, for staff to look at (and replay) in the admin."""
    limit = JUNK_MAX_BYTES if reason in JUNK_REASONS else settings.MQTT_DEAD_LETTER_MAX_BYTES
    raw = message.payload[:limit]
    text = raw.decode("utf-8", errors="replace")
    payload = {
        "topic": message.topic,
        "received_at": message.received_at.isoformat(),
        "dup": message.dup,
        # PostgreSQL's JSON cannot hold NUL, and text is for reading: the exact bytes go alongside when they
        # are not plain UTF-8, for a replay.
        "text": text.replace("\x00", "\ufffd"),
        "size": len(message.payload),
        "truncated": len(message.payload) > limit,
        "errors": errors or {},
    }
    if text.encode() != raw or "\x00" in text:
        payload["base64"] = base64.b64encode(raw).decode()
    if suppressed_before:
        payload["suppressed_before"] = suppressed_before
    return deadletter_record(
        # By reason, so the admin's filter on task name sorts them: mqtt.invalid_json, mqtt.unknown_device...
        task_name=f"mqtt.{reason}",
        source="mqtt",
        payload=payload,
        error=f"{reason}: {detail}".replace("\x00", "\ufffd"),
        traceback=traceback,
    )


def dead_letter_message(dead_letter: DeadLetter, *, topic_root: str) -> Inbound | None:
    """The message a dead letter kept, as it arrived, or None when only part of it was kept."""
    payload = dead_letter.payload or {}
    if payload.get("truncated", True) or "text" not in payload:
        return None
    raw = base64.b64decode(payload["base64"]) if "base64" in payload else payload["text"].encode()
    parsed = topics.parse(payload.get("topic", ""), topic_root)
    device_id, kind = parsed if parsed else ("", "")
    return Inbound(
        topic=payload.get("topic", ""),
        device_id=device_id,
        kind=kind,
        payload=raw,
        received_at=datetime.fromisoformat(payload["received_at"]),
    )

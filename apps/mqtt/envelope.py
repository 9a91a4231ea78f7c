"""What makes a signed (v3) message fresh and used once: its "ts" and its "nonce".

- ts is when the device sent the message. Within MQTT_REPLAY_WINDOW_S of its arrival it is fresh. Further
  ahead it is refused. Further back it is stale: a state message (status, hello, ...) then says nothing true
  about now and is refused, while telemetry is still stored, as old news: its batch is dated by the message's
  own ts, so it never passes for a sign of life (readings are deduplicated by (sensor, ts), so sending it
  again stores nothing twice).
- nonce is a value the device never repeats within the window (a random string, or a counter that survives
  reboots). It is claimed in the transaction that commits the message's effect, so a message is applied once:
  the same nonce again is a replay (or a redelivery of a message already committed) and changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.ingest.adapters import EPOCH, parse_timestamp

NONCE_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}\Z")
_CLAIM_NONCES = """
INSERT INTO mqtt_messagenonce AS seen (device_id, nonce, ts)
SELECT * FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[])
ON CONFLICT (device_id, nonce) DO UPDATE SET ts = EXCLUDED.ts
WHERE seen.ts < %s
RETURNING device_id, nonce
"""


class EnvelopeError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Envelope:
    version: int
    ts: datetime | None = None
    nonce: str | None = None
    stale: bool = False

    @classmethod
    def unsigned(cls) -> Envelope:
        """A message whose sender the broker vouches for (MQTT_DEVICE_AUTH=broker), or a v2 one."""
        return cls(version=2)


def envelope_read(body: dict | list, *, received_at: datetime) -> Envelope:
    """The v3 envelope of a signed body; EnvelopeError names the field that is missing or wrong."""
    if not isinstance(body, dict):
        raise EnvelopeError("non_field_errors", "A signed message is one JSON object.")
    ts_us = parse_timestamp(body.get("ts"))
    if ts_us is None:
        raise EnvelopeError("ts", "Required: when the message was sent (ISO 8601 or epoch seconds).")
    try:
        ts = EPOCH + timedelta(microseconds=ts_us)
    except OverflowError:
        raise EnvelopeError("ts", "Not a time this message could have been sent at.") from None
    nonce = body.get("nonce")
    if isinstance(nonce, int) and not isinstance(nonce, bool) and 0 <= nonce < 2**63:
        nonce = str(nonce)
    if not isinstance(nonce, str) or not NONCE_PATTERN.match(nonce):
        raise EnvelopeError("nonce", "Required: 1 to 64 letters, digits or . _ : -, never repeated within the window.")
    window = timedelta(seconds=settings.MQTT_REPLAY_WINDOW_S)
    if ts > received_at + window:
        raise EnvelopeError("ts", f"More than {settings.MQTT_REPLAY_WINDOW_S} s ahead of the server's clock.")
    return Envelope(version=3, ts=ts, nonce=nonce, stale=ts < received_at - window)


def nonces_claim(claims: list[tuple[int, str, datetime]]) -> set[tuple[int, str]]:
    """Record (device pk, nonce, ts) of messages being applied, in the caller's transaction; returns the pairs
    seen for the first time within the window. Duplicates within `claims` count once, for the first."""
    first: dict[tuple[int, str], datetime] = {}
    for device_pk, nonce, ts in claims:
        first.setdefault((device_pk, nonce), ts)
    if not first:
        return set()
    pairs = sorted(first)  # a fixed order: two bridges claiming the same rows cannot deadlock
    cutoff = timezone.now() - timedelta(seconds=settings.MQTT_REPLAY_WINDOW_S)
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_NONCES,
            [[pk for pk, _ in pairs], [nonce for _, nonce in pairs], [first[pair] for pair in pairs], cutoff],
        )
        return {(device_pk, nonce) for device_pk, nonce in cursor.fetchall()}


def nonces_purge(*, now: datetime | None = None) -> int:
    """Forget nonces whose message is past the window: a message that old is refused, or old news, anyway."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.MQTT_REPLAY_WINDOW_S)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM mqtt_messagenonce WHERE ts < %s", [cutoff])
        return cursor.rowcount

"""Idempotency-Key on ingest and import: a retried request gets the first one's batches instead of new ones.

A client that timed out cannot tell whether its request arrived; sending it again with the same key is safe.
Keys are per sender (a device key, or a user's token), honoured for KEY_TTL, and bound to the request's body:
the same key with another body is a 422, since answering with the first batch would hide that the new
readings were not taken.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import BinaryIO

from django.db import connection, transaction

from apps.core.errors import ApplicationError
from apps.ingest.models import IdempotencyKey, IngestBatch

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_TTL = timedelta(days=1)
MAX_KEY_LENGTH = 255

# The first request with a key takes it; so does one after the key expired. A concurrent request with the same
# key waits here on the unique index until the first commits, and then takes nothing.
_CLAIM = """
INSERT INTO ingest_idempotencykey AS held (sender, key, request_hash, batch_ids, created_at)
VALUES (%(sender)s, %(key)s, %(hash)s, '{}', %(now)s)
ON CONFLICT (sender, key) DO UPDATE
   SET request_hash = EXCLUDED.request_hash, batch_ids = '{}', created_at = EXCLUDED.created_at
 WHERE held.created_at < %(expired_before)s
RETURNING id
"""


def idempotency_key_of(headers) -> str | None:
    """The request's Idempotency-Key, None without one; a 400 when it is not 1-255 printable ASCII characters."""
    key = headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise ApplicationError(
            f"The {HEADER} header must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.",
            errors={HEADER: ["Invalid key."]},
        )
    return key


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def file_hash(stream: BinaryIO) -> str:
    """SHA-256 of a file's content, read from its start; leaves it at its start."""
    stream.seek(0)
    digest = hashlib.file_digest(stream, "sha256").hexdigest()
    stream.seek(0)
    return digest


def sender_of(*, device_pk: int | None, user_pk: int | None) -> str:
    return f"device:{device_pk}" if device_pk is not None else f"user:{user_pk}"


def batches_create_once(
    *, sender: str, key: str | None, request_hash: str, now: datetime, create: Callable[[], list[IngestBatch]]
) -> tuple[list[IngestBatch], bool]:
    """(batches, replayed): `create()`'s batches, or, when this sender used `key` with the same request within
    KEY_TTL, the batches of that first request. The key is taken in the transaction that creates the
    batches, so a request that fails leaves the key free."""
    if key is None:
        return create(), False
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                _CLAIM,
                {"sender": sender, "key": key, "hash": request_hash, "now": now, "expired_before": now - KEY_TTL},
            )
            claimed = cursor.fetchone()
        if claimed is None:
            held = IdempotencyKey.objects.get(sender=sender, key=key)
            if held.request_hash != request_hash:
                raise ApplicationError(
                    f"This {HEADER} was used with a different request; use a new key for new readings.",
                    errors={HEADER: ["Already used for another request."]},
                    status_code=422,
                )
            by_id = IngestBatch.objects.defer("payload").in_bulk(held.batch_ids)
            if len(by_id) < len(held.batch_ids):  # deleted by hand: there is nothing true to answer with
                raise ApplicationError(
                    f"The batches of the first request with this {HEADER} no longer exist; use a new key.",
                    errors={HEADER: ["Its batches were deleted."]},
                    status_code=422,
                )
            return [by_id[batch_id] for batch_id in held.batch_ids], True
        batches = create()
        IdempotencyKey.objects.filter(pk=claimed[0]).update(batch_ids=[batch.pk for batch in batches])
    return batches, False


def idempotency_keys_purge(*, now: datetime) -> int:
    """Delete the keys that are no longer honoured; returns how many went."""
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=now - KEY_TTL).delete()
    return deleted

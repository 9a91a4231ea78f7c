from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex
from django.db import models

from apps.core.model_fields import IdArrayField
from apps.devices.models import Device, Sensor


class Reading(models.Model):
    """The big table: one value of one sensor at one instant, unique on (sensor, ts).

    There is no foreign key to sensors: its check on every inserted reading was half the cost of storing them.
    The store step counts the batch's sensors that exist under an advisory lock, and deleting sensors deletes
    their readings (apps/ingest/sensor_deletion.py, and migration 0008's trigger for plain SQL).
    """

    pk = models.CompositePrimaryKey("sensor_id", "ts")
    sensor = models.ForeignKey(
        Sensor, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    ts = models.DateTimeField()
    value = models.FloatField()

    class Meta:
        # Readings arrive in time order, so a BRIN index on ts stays tiny and cheap to maintain while
        # serving the time-range scans of rollups and retention; per-sensor ranges use the primary key.
        indexes = [BrinIndex(fields=["ts"], name="reading_ts_brin", pages_per_range=32)]

    def __str__(self) -> str:
        return f"{self.sensor_id}@{self.ts.isoformat()}={self.value}"


class LatestReading(models.Model):
    """The newest reading per sensor, kept by the ingest pipeline so real-time reads never scan readings."""

    sensor = models.OneToOneField(Sensor, on_delete=models.CASCADE, primary_key=True, related_name="latest")
    ts = models.DateTimeField()
    value = models.FloatField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.sensor_id}: {self.value} at {self.ts.isoformat()}"


class DatagramSeq(models.Model):
    """(device, seq) pairs seen recently, to drop repeated device datagrams (seq restarts after a window)."""

    pk = models.CompositePrimaryKey("device_id", "seq")
    device = models.ForeignKey(Device, on_delete=models.CASCADE, db_index=False, related_name="+")
    seq = models.BigIntegerField()
    received_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.device_id}#{self.seq}"


class IngestBatch(models.Model):
    """One ingest request (or MQTT micro-batch, or import chunk) and what became of its readings."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        PROCESSING = "processing"
        DONE = "done"
        FAILED = "failed"

    class Source(models.TextChoices):
        HTTP = "http"
        MQTT = "mqtt"
        IMPORT = "import"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.HTTP)
    device = models.ForeignKey(
        Device,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The device key that sent it.",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    received_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    received = models.PositiveIntegerField(default=0)
    stored = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    rejected_by_reason = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True, help_text="The first rejects with their reasons.")
    sequence_gaps = models.PositiveBigIntegerField(default=0)
    failure = models.TextField(blank=True, default="")
    # Normalised readings waiting to be stored, as compact JSON bytes (apps/ingest/payload.py); cleared once
    # the batch is done, kept when it failed so a replay has them.
    payload = models.BinaryField(null=True, blank=True, editable=False)
    request_id = models.CharField(max_length=64, blank=True, default="")
    # What the batch stored, for threshold evaluation to read back (sensors and the time span of their
    # readings), and when that evaluation finished.
    stored_sensor_ids = IdArrayField(models.BigIntegerField(), default=list, blank=True, editable=False)
    stored_ts_min = models.DateTimeField(null=True, blank=True, editable=False)
    stored_ts_max = models.DateTimeField(null=True, blank=True, editable=False)
    evaluated_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["status", "received_at"]),
            models.Index(fields=["device", "-received_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"


class IdempotencyKey(models.Model):
    """An Idempotency-Key a sender gave an ingest or import request, and the batches that request made.

    The unique constraint is what makes a retry safe: of two concurrent requests with one key, the second
    waits for the first's insert and then answers with its batches. Keys are honoured for KEY_TTL
    (apps/ingest/idempotency.py) and deleted by the daily batch purge.
    """

    sender = models.CharField(max_length=32, help_text='"device:<id>" or "user:<id>".')
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64, help_text="SHA-256 of the request's body (or file).")
    batch_ids = ArrayField(models.UUIDField(), default=list, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sender", "key"], name="ingest_idempotency_sender_key")]
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.sender} {self.key}"

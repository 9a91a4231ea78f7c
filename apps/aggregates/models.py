from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import F
from django.utils import timezone

from apps.devices.models import Sensor


class RollupFields(models.Model):
    """One bucket of one sensor: what a straightforward aggregate over its raw readings gives.

    `avg` is derived (sum / count) so it can never disagree with the two it comes from. The foreign key to
    sensors is declared in SQL (migration 0002) with ON DELETE CASCADE, like the readings' own.
    """

    sensor = models.ForeignKey(
        Sensor, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    bucket = models.DateTimeField(help_text="Start of the bucket (UTC hour or UTC day).")
    min = models.FloatField()
    max = models.FloatField()
    sum = models.FloatField()
    count = models.BigIntegerField()
    avg = models.GeneratedField(expression=F("sum") / F("count"), output_field=models.FloatField(), db_persist=True)
    first_ts = models.DateTimeField(help_text="Timestamp of the bucket's first reading.")
    last_ts = models.DateTimeField(help_text="Timestamp of the bucket's last reading.")

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.sensor_id}@{self.bucket.isoformat()}: n={self.count}"


class RollupHour(RollupFields):
    pk = models.CompositePrimaryKey("sensor_id", "bucket")

    class Meta:
        # The primary key serves per-sensor range reads; BRIN on bucket serves the retention purge.
        indexes = [BrinIndex(fields=["bucket"], name="rollup_hour_bucket_brin")]


class RollupDay(RollupFields):
    pk = models.CompositePrimaryKey("sensor_id", "bucket")

    class Meta:
        indexes = [BrinIndex(fields=["bucket"], name="rollup_day_bucket_brin")]


class RollupOverflow(models.Model):
    """A rollup bucket whose sum exceeds float8, kept with an infinite sum (and right count, min and max).

    Only readings stored before INGEST_MAX_ABS_VALUE bounded values can make one. Listed for staff, who may
    delete the readings at fault, rebuild the rollups of that time (manage.py rebuild_rollups) and delete
    the entry."""

    class Granularity(models.TextChoices):
        HOUR = "hour"
        DAY = "day"

    sensor = models.ForeignKey(Sensor, on_delete=models.CASCADE, related_name="+")
    granularity = models.CharField(max_length=8, choices=Granularity.choices)
    bucket = models.DateTimeField(help_text="Start of the bucket (UTC).")
    detected_at = models.DateTimeField(default=timezone.now, help_text="When a refresh last met it.")

    class Meta:
        ordering = ["-detected_at"]
        constraints = [
            models.UniqueConstraint(fields=["sensor", "granularity", "bucket"], name="rollup_overflow_bucket")
        ]

    def __str__(self) -> str:
        return f"{self.sensor_id} {self.granularity} {self.bucket.isoformat()}"


class RolledUpBatch(models.Model):
    """Ingest batches whose buckets the refresh has re-aggregated, kept until the watermark passes them."""

    batch_id = models.UUIDField(primary_key=True)
    finished_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return str(self.batch_id)


class RollupState(models.Model):
    """The one row that says how far the rollups can be trusted (see docs/aggregation.md).

    - every done ingest batch that finished before `watermark` is in the rollups;
    - rollups are complete for buckets from `covered_from` on (everything, once `backfilled`), except the
      buckets of batches finished since `watermark` that are not in RolledUpBatch yet.
    """

    SINGLETON = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON, editable=False)
    watermark = models.DateTimeField(null=True, blank=True)
    covered_from = models.DateTimeField(null=True, blank=True)
    backfilled = models.BooleanField(default=False)
    last_refresh_at = models.DateTimeField(null=True, blank=True)
    last_refresh_ms = models.FloatField(null=True, blank=True)
    last_refresh_batches = models.PositiveIntegerField(default=0)
    last_refresh_rows = models.PositiveIntegerField(default=0, help_text="Rollup rows written by the last run.")
    last_purge_at = models.DateTimeField(null=True, blank=True)
    last_purge_readings = models.PositiveBigIntegerField(default=0)
    last_purge_rollups = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="rollupstate_singleton")]

    def __str__(self) -> str:
        return f"rollups watermark {self.watermark}"


class ExportJob(models.Model):
    """An export too large to stream in a request: written to a file by a task, downloadable until it expires."""

    class Kind(models.TextChoices):
        READINGS = "readings"
        AGGREGATES = "aggregates"

    class Format(models.TextChoices):
        CSV = "csv"
        NDJSON = "ndjson"
        XLSX = "xlsx"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        EXPIRED = "expired"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    format = models.CharField(max_length=8, choices=Format.choices)
    params = models.JSONField(default=dict, help_text="The validated query, as the task re-reads it.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A running job renews this while it writes; a job whose lease ran out lost its worker and is queued again.
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    estimated_rows = models.PositiveBigIntegerField(default=0)
    rows = models.PositiveBigIntegerField(default=0)
    file = models.CharField(max_length=300, blank=True, default="", help_text="Storage name of the result.")
    size_bytes = models.PositiveBigIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "expires_at"]), models.Index(fields=["created_by", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind}.{self.format} ({self.status})"

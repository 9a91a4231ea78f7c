"""The worker side of ingest: store one batch set-wise and idempotently."""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from celery import current_app
from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from apps.core.sql import binary_cursor
from apps.core.tasks import EVALUATE_BATCH_TASK
from apps.devices.connectivity import devices_seen
from apps.ingest.adapters import to_epoch_us
from apps.ingest.models import IngestBatch
from apps.ingest.partitions import partitions_ensure_for, partitions_forget
from apps.ingest.payload import NormalizedBatch, describe_ref
from apps.ingest.resolution import ResolvedDevice, ResolvedSensor, clear_cache, resolve_refs
from apps.ingest.sensor_deletion import lock_for_storing
from apps.ingest.text import printable
from apps.operations import metrics

logger = logging.getLogger(__name__)


class Reason:
    UNKNOWN_SENSOR = "unknown_sensor"
    FORBIDDEN_SENSOR = "forbidden_sensor"
    DEVICE_INACTIVE = "device_inactive"
    NOT_A_NUMBER = "not_a_number"
    OUT_OF_RANGE = "out_of_range"
    VALUE_OUT_OF_RANGE = "value_out_of_range"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    FUTURE_TIMESTAMP = "future_timestamp"
    UNSTORABLE = "unstorable"
    ALL = (
        UNKNOWN_SENSOR,
        FORBIDDEN_SENSOR,
        DEVICE_INACTIVE,
        NOT_A_NUMBER,
        OUT_OF_RANGE,
        VALUE_OUT_OF_RANGE,
        TIMESTAMP_OUT_OF_RANGE,
        FUTURE_TIMESTAMP,
        UNSTORABLE,
    )


# The earliest timestamp accepted; older ones are a device's unset clock, not history worth keeping.
EARLIEST_TS = datetime(2000, 1, 1, tzinfo=UTC)
EARLIEST_TS_US = to_epoch_us(EARLIEST_TS)
# What the database refused in a reading (a value, a text, a time out of its range): errors of the data, not
# of the system, so the batch is split to find the readings at fault rather than failed whole.
DATA_ERRORS = (DataError, OverflowError, UnicodeError)


class AttemptsExhausted(Exception):
    """A batch was claimed INGEST_MAX_ATTEMPTS times and never finished: not retried, it fails (and its task
    becomes a dead letter to replay once the cause is dealt with)."""


@dataclass
class BatchOutcome:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected_by_reason: Counter = field(default_factory=Counter)
    samples: list[dict] = field(default_factory=list)
    sequence_gaps: int = 0
    sensor_ids: list[int] = field(default_factory=list)
    ts_min_us: int | None = None
    ts_max_us: int | None = None
    received_at: datetime | None = None

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    def merge(self, other: BatchOutcome, *, sample_limit: int) -> None:
        """Add the outcome of another part of the same batch."""
        self.received += other.received
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.rejected_by_reason.update(other.rejected_by_reason)
        self.samples.extend(other.samples[: max(sample_limit - len(self.samples), 0)])
        self.sequence_gaps += other.sequence_gaps
        self.sensor_ids = sorted(set(self.sensor_ids) | set(other.sensor_ids))
        for ts_us in (other.ts_min_us, other.ts_max_us):
            if ts_us is not None:
                self.ts_min_us = ts_us if self.ts_min_us is None else min(self.ts_min_us, ts_us)
                self.ts_max_us = ts_us if self.ts_max_us is None else max(self.ts_max_us, ts_us)


STAGE_TABLE = "ingest_stage"
# ON COMMIT DELETE ROWS: the staging rows live exactly as long as the batch transaction.
_CREATE_STAGE = f"""
CREATE TEMP TABLE IF NOT EXISTS {STAGE_TABLE} (sensor_id bigint, ts_us bigint, value float8) ON COMMIT DELETE ROWS
"""
_TS = "(timestamptz 'epoch' + {col} * interval '1 microsecond')"

# The readings, with the number of the batch's sensors (its distinct ids, the parameter) that exist: the
# statement's snapshot is taken after the store lock is held (apps/ingest/sensor_deletion.py), so a sensor
# whose deletion committed before then is missing here, and one deleted later has its readings deleted then.
_INSERT_FROM_STAGE = f"""
WITH inserted AS (
    INSERT INTO ingest_reading (sensor_id, ts, value)
    SELECT sensor_id, {_TS.format(col="ts_us")}, value FROM {STAGE_TABLE} ORDER BY sensor_id, ts_us
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM inserted),
       (SELECT count(*) FROM unnest(%s::bigint[]) AS wanted(id) JOIN devices_sensor s ON s.id = wanted.id)
"""
# Late data never replaces a newer latest value; rows are taken in sensor order so that two batches
# upserting the same sensors lock them in the same order and cannot deadlock.
_UPSERT_LATEST = """
INSERT INTO ingest_latestreading (sensor_id, ts, value, updated_at)
SELECT sensor_id, {ts}, value, now() FROM (
    SELECT DISTINCT ON (sensor_id) sensor_id, ts_us, value FROM {source} ORDER BY sensor_id, ts_us DESC
) newest
ORDER BY sensor_id
ON CONFLICT (sensor_id) DO UPDATE SET ts = EXCLUDED.ts, value = EXCLUDED.value, updated_at = EXCLUDED.updated_at
WHERE ingest_latestreading.ts < EXCLUDED.ts
"""
_LATEST_FROM_STAGE = _UPSERT_LATEST.format(ts=_TS.format(col="ts_us"), source=STAGE_TABLE)
_CLAIM_SEQS = """
INSERT INTO ingest_datagramseq AS seen (device_id, seq, received_at)
SELECT d, s, %s FROM unnest(%s::bigint[], %s::bigint[]) AS u(d, s)
ON CONFLICT (device_id, seq) DO UPDATE SET received_at = EXCLUDED.received_at
WHERE seen.received_at < EXCLUDED.received_at - %s * interval '1 second'
RETURNING device_id, seq
"""


def batch_process(*, batch_id: str, queue_evaluation: bool = True) -> BatchOutcome | None:
    """Store a queued batch. Safe to run any number of times: a done batch is left alone, and everything
    a run writes commits together with the batch's new status, so a run that dies leaves no trace.
    `queue_evaluation`: send the evaluation task after the commit; False when the caller evaluates the
    batch itself right after (the ingest task does, in the same process).

    1. Mark the batch processing and count the attempt (its own commit, so status readers see it), unless it
       is already done; past INGEST_MAX_ATTEMPTS raise AttemptsExhausted.
    2. In one transaction, lock the batch row (a concurrent redelivery waits here, then sees it done).
    3. Resolve sensor references in one query; reject what is unknown, foreign, not a number,
       implausible, too large, or outside the timestamp window.
    4. Drop repeated device datagrams by (device, seq); count gaps in each device's sequence.
    5. Write the good readings set-wise (ON CONFLICT DO NOTHING makes duplicates count, not fail), upsert
       latest values, touch devices' last seen, and record the counts with status done.
    Should the database still refuse some reading's data in 3-5, the batch is split to find it (see
    `_store_isolating`): the others are stored, it is rejected as `unstorable`.
    """
    now = timezone.now()
    cap = settings.INGEST_MAX_ATTEMPTS
    failed = Q(status=IngestBatch.Status.FAILED)
    claimed = (
        IngestBatch.objects.filter(pk=batch_id)
        .exclude(status=IngestBatch.Status.DONE)
        # Attempts count claims, so a batch whose runs keep dying (killed at the time limit, out of memory)
        # stops at the cap instead of being redelivered for ever. Only a person sends a failed batch again
        # (replay, admin action), and that starts a fresh count.
        .filter(failed | Q(attempts__lt=cap))
        .update(
            status=IngestBatch.Status.PROCESSING,
            started_at=now,
            attempts=Case(When(failed, then=Value(1)), default=F("attempts") + 1),
        )
    )
    if not claimed:
        if IngestBatch.objects.filter(pk=batch_id).exclude(status=IngestBatch.Status.DONE).exists():
            raise AttemptsExhausted(f"ingest batch {batch_id} was claimed {cap} times without finishing")
        logger.debug("ingest batch %s is done or gone; nothing to do", batch_id)
        return None
    started = time.monotonic()
    try:
        try:
            outcome = _store_batch(batch_id, queue_evaluation=queue_evaluation)
        except IntegrityError:
            # A sensor was deleted while this process still had it cached (`_write` counts the batch's
            # sensors that exist), or a partition this process knew was dropped. Everything above rolled
            # back; resolve afresh and go again.
            clear_cache()
            partitions_forget()
            outcome = _store_batch(batch_id, queue_evaluation=queue_evaluation)
    except DATA_ERRORS as exc:
        # Some reading's data was refused; everything rolled back. Go again, finding it (no savepoints on the
        # normal path: they would cost every batch two more round trips).
        logger.warning("ingest batch %s: %s; isolating the readings at fault", batch_id, exc)
        outcome = _store_batch(batch_id, queue_evaluation=queue_evaluation, refused=exc)
    if outcome is not None:
        _count(outcome, seconds=time.monotonic() - started)
        # DEBUG: a line per batch, several a second on a busy system. A batch that fails is logged by its task
        # (Celery logs the failure at ERROR, each retry at INFO).
        logger.debug(
            "ingest batch %s stored %d, duplicates %d, rejected %d",
            batch_id, outcome.stored, outcome.duplicates, outcome.rejected,
        )  # fmt: skip
    return outcome


def _count(outcome: BatchOutcome, *, seconds: float) -> None:
    metrics.READINGS_STORED.inc(outcome.stored)
    metrics.READINGS_DUPLICATE.inc(outcome.duplicates)
    for reason, count in outcome.rejected_by_reason.items():
        metrics.READINGS_REJECTED.labels(reason).inc(count)
    metrics.INGEST_BATCH_SECONDS.observe(seconds)
    if outcome.received_at is not None:
        metrics.INGEST_BATCH_LATENCY_SECONDS.observe((timezone.now() - outcome.received_at).total_seconds())


def _store_batch(batch_id: str, *, queue_evaluation: bool, refused: Exception | None = None) -> BatchOutcome | None:
    """Store the batch in one transaction; `refused`: the error of a first attempt, to isolate its cause."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            lock_for_storing(cursor)  # before any row is locked: apps/ingest/sensor_deletion.py
        batch = IngestBatch.objects.select_for_update().filter(pk=batch_id).first()
        if batch is None or batch.status == IngestBatch.Status.DONE:
            return None
        if batch.payload is None:
            raise ValueError(f"ingest batch {batch_id} has no payload to process")
        normalized = NormalizedBatch.loads(batch.payload)
        if refused is None:
            outcome = store_readings(normalized, batch=batch)
        else:
            outcome = _store_isolating(normalized, batch=batch, refused=refused)
        batch.status = IngestBatch.Status.DONE
        batch.finished_at = timezone.now()
        batch.received = outcome.received
        batch.stored = outcome.stored
        batch.duplicates = outcome.duplicates
        batch.rejected = outcome.rejected
        batch.rejected_by_reason = dict(outcome.rejected_by_reason)
        batch.errors = outcome.samples
        batch.sequence_gaps = outcome.sequence_gaps
        batch.failure = ""
        batch.payload = None
        batch.stored_sensor_ids = outcome.sensor_ids if outcome.stored else []
        if outcome.stored:
            batch.stored_ts_min = _datetime(outcome.ts_min_us)
            batch.stored_ts_max = _datetime(outcome.ts_max_us)
            if queue_evaluation:
                transaction.on_commit(lambda: enqueue_evaluation(batch_id=str(batch.pk)), robust=True)
        else:
            batch.evaluated_at = batch.finished_at  # nothing new to evaluate
        batch.save()
    return outcome


def _store_isolating(normalized: NormalizedBatch, *, batch: IngestBatch, refused: Exception) -> BatchOutcome:
    """store_readings for readings whose attempt the database `refused` on data: what it refuses costs only
    the request items that carry it.

    The batch is halved along request items, each half stored in a savepoint of its own, and a half that
    fails is halved again, down to single items, whose readings are then rejected as `unstorable` with the
    database's message. An item is the unit because a datagram's readings share its seq, which only one part
    could claim. The adapters make every known case of such data a structural error or a counted reject, so
    this runs only for what they do not foresee."""
    items = sorted(set(normalized.i))
    if len(items) <= 1:
        return _unstorable(normalized, batch=batch, refused=refused)
    middle = items[len(items) // 2]
    outcome = BatchOutcome(received_at=batch.received_at)
    for positions in (
        [position for position, item in enumerate(normalized.i) if item < middle],
        [position for position, item in enumerate(normalized.i) if item >= middle],
    ):
        part = NormalizedBatch()
        part.extend(normalized, positions)
        try:
            with transaction.atomic():
                part_outcome = store_readings(part, batch=batch)
        except DATA_ERRORS as exc:
            part_outcome = _store_isolating(part, batch=batch, refused=exc)
        outcome.merge(part_outcome, sample_limit=settings.INGEST_REJECT_SAMPLES)
    return outcome


def _unstorable(normalized: NormalizedBatch, *, batch: IngestBatch, refused: Exception) -> BatchOutcome:
    """Reject the readings of one request item that the database refused."""
    item = normalized.i[0] if normalized.i else None
    logger.warning("ingest batch %s: item %s rejected as unstorable: %s", batch.pk, item, refused)
    detail = printable((str(refused).splitlines() or [type(refused).__name__])[0][:200])
    outcome = BatchOutcome(received=len(normalized), received_at=batch.received_at)
    outcome.rejected_by_reason[Reason.UNSTORABLE] = len(normalized)
    for position in range(min(len(normalized), settings.INGEST_REJECT_SAMPLES)):
        outcome.samples.append(_sample(normalized, position, Reason.UNSTORABLE, detail))
    return outcome


def _sample(normalized: NormalizedBatch, position: int, reason: str, detail: str = "") -> dict:
    """One reject as a batch reports it (its request item, sensor, time and reason)."""
    sample = {
        "index": normalized.i[position],
        "sensor": printable(describe_ref(normalized.refs[normalized.r[position]])),
        "ts": _iso(normalized.t[position]),
        "reason": reason,
    }
    if detail:
        sample["detail"] = detail
    return sample


def enqueue_evaluation(*, batch_id: str) -> None:
    """Hand a stored batch to threshold evaluation (the alerting side), by task name."""
    current_app.send_task(EVALUATE_BATCH_TASK, kwargs={"batch_id": batch_id})


def batch_mark_failed(*, batch_id: str, error: str) -> None:
    """The batch gave up after its retries; its payload stays for a replay."""
    IngestBatch.objects.filter(pk=batch_id).exclude(status=IngestBatch.Status.DONE).update(
        status=IngestBatch.Status.FAILED, failure=error[:5000], finished_at=timezone.now()
    )


def store_readings(normalized: NormalizedBatch, *, batch: IngestBatch) -> BatchOutcome:
    outcome = BatchOutcome(received=len(normalized), received_at=batch.received_at)
    with connection.cursor() as cursor:
        # These statements are short; PostgreSQL's JIT compiler, triggered by their row estimates, would cost
        # more than it saves (seen at 100+ ms on statements that run in a few).
        cursor.execute("SET LOCAL jit = off")
    resolved, devices = resolve_refs(normalized.refs)
    sensors = [resolved.get(ref) for ref in normalized.refs]
    sender = batch.device_id  # pk of the device whose key sent it, if any
    received_us = to_epoch_us(batch.received_at)
    future_limit = received_us + settings.INGEST_MAX_FUTURE_SKEW_S * 1_000_000
    max_abs_value = settings.INGEST_MAX_ABS_VALUE
    fresh_groups = _claim_datagrams(normalized.groups, devices, batch.received_at)
    sample_limit = settings.INGEST_REJECT_SAMPLES

    def reject(position: int, reason: str, detail: str = "") -> None:
        outcome.rejected_by_reason[reason] += 1
        if len(outcome.samples) < sample_limit:
            outcome.samples.append(_sample(normalized, position, reason, detail))

    sensor_ids: list[int] = []
    timestamps: list[int] = []
    values: list[float] = []
    for position in range(len(normalized)):
        sensor: ResolvedSensor | None = sensors[normalized.r[position]]
        value = normalized.v[position]
        ts_us = normalized.t[position]
        if sensor is None:
            reject(position, Reason.UNKNOWN_SENSOR)
        elif sender is not None and sensor.device.device_pk != sender:
            reject(position, Reason.FORBIDDEN_SENSOR, "The sending device's key does not own this sensor.")
        elif not sensor.device.active:
            reject(position, Reason.DEVICE_INACTIVE)
        elif value is None or not math.isfinite(value):
            reject(position, Reason.NOT_A_NUMBER, normalized.bad.get(str(position), ""))
        elif (sensor.plausible_min is not None and value < sensor.plausible_min) or (
            sensor.plausible_max is not None and value > sensor.plausible_max
        ):
            reject(
                position, Reason.OUT_OF_RANGE, f"{value} is outside [{sensor.plausible_min}, {sensor.plausible_max}]"
            )
        elif not -max_abs_value <= value <= max_abs_value:
            reject(position, Reason.VALUE_OUT_OF_RANGE, f"{value} is beyond ±{max_abs_value:g} (INGEST_MAX_ABS_VALUE)")
        elif ts_us > future_limit:
            reject(position, Reason.FUTURE_TIMESTAMP)
        elif ts_us < EARLIEST_TS_US:
            reject(position, Reason.TIMESTAMP_OUT_OF_RANGE, f"before {_iso(EARLIEST_TS_US)}")
        elif normalized.g[position] >= 0 and normalized.g[position] not in fresh_groups:
            outcome.duplicates += 1
        else:
            sensor_ids.append(sensor.sensor_id)
            timestamps.append(ts_us)
            values.append(value)

    if sensor_ids:
        outcome.sensor_ids = sorted(set(sensor_ids))
        stored = _write(sensor_ids, timestamps, values, outcome.sensor_ids)
        outcome.stored = stored
        outcome.duplicates += len(sensor_ids) - stored
        outcome.ts_min_us, outcome.ts_max_us = min(timestamps), max(timestamps)
    outcome.sequence_gaps = _touch_devices(normalized, devices, fresh_groups, batch)
    return outcome


def _write(sensor_ids: list[int], timestamps: list[int], values: list[float], distinct_ids: list[int]) -> int:
    partitions_ensure_for(timestamps)
    with connection.cursor() as cursor:
        # One round trip: the staging table, normally empty (ON COMMIT DELETE ROWS), not so when a caller runs
        # several batches in one outer transaction, whose earlier batch's rows would be inserted again.
        cursor.execute(f"{_CREATE_STAGE}; DELETE FROM {STAGE_TABLE}")
        with cursor.cursor.copy(f"COPY {STAGE_TABLE} (sensor_id, ts_us, value) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(_binary_copy(sensor_ids, timestamps, values))
    with binary_cursor() as cursor:
        cursor.execute(_INSERT_FROM_STAGE, [distinct_ids])
        stored, present = cursor.fetchone()
        if present != len(distinct_ids):
            # A sensor was deleted while this process still had it cached: roll back, resolve afresh.
            raise IntegrityError(f"{len(distinct_ids) - present} of the batch's sensors no longer exist")
        cursor.execute(_LATEST_FROM_STAGE, [])
        return stored


# PostgreSQL's binary COPY format: a fixed header, then per row a field count and each field as its length
# and big-endian bytes, then -1. The whole buffer is built by numpy in one go: psycopg's write_row costs
# Python per row, which was most of the store step's time.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
_COPY_TRAILER = b"\xff\xff"
_COPY_ROW = np.dtype(
    [("n", ">i2"), ("ls", ">i4"), ("s", ">i8"), ("lt", ">i4"), ("t", ">i8"), ("lv", ">i4"), ("v", ">f8")]
)


def _binary_copy(sensor_ids: list[int], timestamps: list[int], values: list[float]) -> bytes:
    rows = np.empty(len(sensor_ids), dtype=_COPY_ROW)
    rows["n"] = 3
    rows["ls"] = rows["lt"] = rows["lv"] = 8
    rows["s"] = sensor_ids
    rows["t"] = timestamps
    rows["v"] = values
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


def _claim_datagrams(groups: list[list], devices: dict[str, ResolvedDevice], received_at: datetime) -> set[int]:
    """Indexes of the datagrams seen for the first time (within the dedup window); the rest are repeats."""
    first_of: dict[tuple[int, int], int] = {}
    for index, (device_id, seq) in enumerate(groups):
        device = devices.get(device_id)
        if device is not None:
            first_of.setdefault((device.device_pk, seq), index)
    if not first_of:
        return set()
    pairs = sorted(first_of)
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_SEQS,
            [received_at, [d for d, _ in pairs], [s for _, s in pairs], settings.INGEST_SEQ_DEDUP_WINDOW_S],
        )
        fresh = {(device_pk, seq) for device_pk, seq in cursor.fetchall()}
    return {index for pair, index in first_of.items() if pair in fresh}


def _touch_devices(
    normalized: NormalizedBatch, devices: dict[str, ResolvedDevice], fresh_groups: set[int], batch: IngestBatch
) -> int:
    """Tell connectivity which devices this batch heard from (and their fresh seqs); returns the gaps found."""
    if batch.source == IngestBatch.Source.IMPORT:
        return 0
    if batch.device_id is not None:
        # A device key speaks only for its own device, whatever sensors its readings named.
        device_pks = [batch.device_id]
    else:
        device_pks = sorted({device.device_pk for device in devices.values() if device.active})
    seqs_by_device: dict[int, list[int]] = {}
    for index in fresh_groups:
        device_id, seq = normalized.groups[index]
        seqs_by_device.setdefault(devices[device_id].device_pk, []).append(seq)
    return devices_seen(device_pks=device_pks, seqs_by_device=seqs_by_device, at=batch.received_at)


def _datetime(ts_us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ts_us)


def _iso(ts_us: int) -> str:
    try:
        return _datetime(ts_us).isoformat().replace("+00:00", "Z")
    except OverflowError:  # only from a payload the adapters did not make
        return f"{ts_us} µs since the epoch"

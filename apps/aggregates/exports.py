"""Exports of readings and aggregates: the rows, their size, and the background jobs for large ones.

A request whose export would hold more than EXPORTS_SYNC_MAX_ROWS rows becomes an ExportJob: a task on the
`exports` queue (its own, so ingest and alerts never wait behind it) writes the file to storage, the job's
status is readable in the API, and its download link is signed with a time and works until the job expires.
A job is claimed with a lease that the writing task renews, so a redelivered message does not write it twice
and a job whose worker died is queued again by the sweep. An export holds at most EXPORTS_MAX_ROWS rows, and
a user has at most EXPORTS_MAX_ACTIVE_JOBS_PER_USER jobs queued or running.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.core import signing
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.aggregates.buckets import bucket_count_bound, iso_in_zone
from apps.aggregates.formats import write_file
from apps.aggregates.models import ExportJob
from apps.aggregates.params import (
    AggregatesExportQuery,
    ReadingsExportQuery,
    Selection,
    aggregate_query_of,
    refuse,
    selection_of,
    series_count,
)
from apps.aggregates.selectors import (
    AggregateQuery,
    aggregate_rows,
    bucket_start,
    bucket_values,
    iter_aggregate_rows,
)
from apps.core.errors import ApplicationError
from apps.core.query import as_parameters, validated
from apps.core.tasks import RUN_EXPORT_TASK

logger = logging.getLogger(__name__)

LEASE = timedelta(seconds=120)
# A queued job that no worker started within this time lost its message (the broker was down).
QUEUED_TOO_LONG = timedelta(minutes=10)
_SIGNER = signing.TimestampSigner(salt="aggregates.export-download")
# Key space of the transaction-level advisory lock that serialises one user's job creations (the quota check).
_LOCK_USER_EXPORTS = 7302
READINGS_HEADER = ["sensor", "ts", "value"]


@dataclass
class ExportPlan:
    """What an export request will produce: the rows to write and how many there are about to be."""

    kind: str
    header: list[str]
    rows: Iterator[tuple]
    estimated_rows: int
    params: dict


QUERIES = {ExportJob.Kind.READINGS: ReadingsExportQuery, ExportJob.Kind.AGGREGATES: AggregatesExportQuery}


def export_query(kind: str, params) -> dict:
    """Raw parameters of an export (a query string, or a job's stored ones) checked by the kind's serializer;
    an ApplicationError naming each bad parameter."""
    return validated(QUERIES[kind], params)


def _normalized(kind: str, query: dict) -> dict:
    """The checked query as parameters, its time range fixed (the defaults resolved), so a job run later
    exports the same rows; the format is the job's own."""
    params = as_parameters(QUERIES[kind], query)
    params.pop("format", None)
    return params


def readings_rows(selection: Selection) -> Iterator[tuple]:
    """(sensor key, ts, value) ordered by sensor key and time: one primary-key range scan per sensor through a
    server-side cursor, so rows are never all in memory."""
    zone = zoneinfo.ZoneInfo(selection.tz)
    for sensor in selection.sensors.values():
        with connection.chunked_cursor() as cursor:
            cursor.execute(
                "SELECT ts, value FROM ingest_reading WHERE sensor_id = %s AND ts >= %s AND ts < %s ORDER BY ts",
                [sensor.id, selection.start, selection.end],
            )
            while rows := cursor.fetchmany(2000):
                for ts, value in rows:
                    yield sensor.key, iso_in_zone(ts, zone), value


def readings_count(selection: Selection) -> int:
    """How many readings the selection holds, counted from rollups where they are complete."""
    query = AggregateQuery(
        sensor_ids=selection.sensor_ids,
        interval="month",
        tz=selection.tz,
        start=selection.start,
        end=selection.end,
        functions=("count",),
        group_by="all",
    )
    return sum(row[5] for row in aggregate_rows(query))


def series_columns(query: AggregateQuery) -> list[str]:
    return {"sensor": ["sensor"], "location": ["location", "location_path"], "all": []}[query.group_by]


def aggregate_export_rows(query: AggregateQuery, selection: Selection) -> Iterator[tuple]:
    zone = zoneinfo.ZoneInfo(query.tz)
    keys = {sensor.id: (sensor.key,) for sensor in selection.sensors.values()}
    if query.group_by == "location":
        keys = {sensor.location_id: (sensor.location_id, sensor.location_path) for sensor in selection.sensors.values()}
    rendered: dict[int, str] = {}
    for row in iter_aggregate_rows(query):
        series = keys.get(row[0], ()) if query.group_by != "all" else ()
        values = bucket_values(row, query.functions)
        label = rendered.get(row[1])
        if label is None:
            label = rendered[row[1]] = iso_in_zone(bucket_start(row[1]), zone)
        yield (*series, label, *(values[name] for name in query.functions))


def export_plan(kind: str, query: dict) -> ExportPlan:
    """Plan the rows of a checked export query (export_query), or an ApplicationError naming the parameter to
    change. More rows than EXPORTS_MAX_ROWS are refused: readings counted in [start, end), aggregates as
    buckets times series."""
    limit = settings.EXPORTS_MAX_ROWS
    if kind == ExportJob.Kind.READINGS:
        selection = selection_of(query)
        estimate = readings_count(selection)
        if estimate > limit:
            message = (
                f"[start, end) holds {estimate:,} readings of the selected sensors, more than the {limit:,} one "
                "export may hold (EXPORTS_MAX_ROWS): export a shorter range or fewer sensors."
            )
            raise ApplicationError(message, errors={"start": [message], "end": [message]})
        return ExportPlan(
            kind=kind,
            header=READINGS_HEADER,
            rows=readings_rows(selection),
            estimated_rows=estimate,
            params=_normalized(kind, query),
        )
    aggregate, selection = aggregate_query_of(query, limit_size=False)
    buckets = bucket_count_bound(interval=aggregate.interval, start=aggregate.start, end=aggregate.end)
    estimate = buckets * series_count(aggregate, selection)
    if estimate > limit:
        refuse(
            "interval",
            f"Up to {estimate:,} rows ({buckets:,} {aggregate.interval}s of [start, end) for each series), more "
            f"than the {limit:,} one export may hold (EXPORTS_MAX_ROWS): use a longer interval, a shorter range, "
            "fewer sensors or group_by=location or all.",
        )
    return ExportPlan(
        kind=kind,
        header=[*series_columns(aggregate), "bucket", *aggregate.functions],
        rows=aggregate_export_rows(aggregate, selection),
        estimated_rows=estimate,
        params=_normalized(kind, query),
    )


def export_job_create(*, plan: ExportPlan, format: str, user_id: int) -> ExportJob:
    """Keep the job and queue its task once the row is committed; 429 when the user has
    EXPORTS_MAX_ACTIVE_JOBS_PER_USER jobs queued or running already."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Two requests of one user at once must not both pass the count below.
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_USER_EXPORTS, user_id])
        active = ExportJob.objects.filter(
            created_by_id=user_id, status__in=[ExportJob.Status.QUEUED, ExportJob.Status.RUNNING]
        ).count()
        limit = settings.EXPORTS_MAX_ACTIVE_JOBS_PER_USER
        if active >= limit:
            raise ApplicationError(
                f"You have {active} export job(s) queued or running, as many as one user may "
                f"(EXPORTS_MAX_ACTIVE_JOBS_PER_USER={limit}); try again when one has finished "
                "(GET /api/v1/exports/jobs/ shows them).",
                status_code=429,
            )
        job = ExportJob.objects.create(
            kind=plan.kind, format=format, params=plan.params, created_by_id=user_id, estimated_rows=plan.estimated_rows
        )
        transaction.on_commit(lambda: enqueue_export(export_id=str(job.pk)), robust=True)
    return job


def enqueue_export(*, export_id: str) -> None:
    current_app.send_task(RUN_EXPORT_TASK, args=[export_id])


class _LostClaim(Exception):
    """Another run took the job over (this one was presumed dead); stop writing."""


def export_job_run(*, export_id: str) -> ExportJob | None:
    """Write one export job's file. A job that is done, gone, or being written by a live run is left alone.

    1. Claim the job: queued, or running with its lease run out; the claim is the attempt number.
    2. Plan its rows from the stored parameters; a query that no longer holds (a sensor was deleted) fails
       the job for good.
    3. Write the file to a temporary file, renewing the lease as rows go, then save it to storage and mark
       the job done with its row count, size and expiry.
    """
    now = timezone.now()
    claimed = (
        ExportJob.objects.filter(pk=export_id, attempts__lt=settings.EXPORTS_MAX_ATTEMPTS)
        .filter(Q(status=ExportJob.Status.QUEUED) | Q(status=ExportJob.Status.RUNNING, lease_until__lt=now))
        .update(status=ExportJob.Status.RUNNING, started_at=now, lease_until=now + LEASE, attempts=F("attempts") + 1)
    )
    if not claimed:
        logger.info("export %s is done, gone or being written; nothing to do", export_id)
        return None
    job = ExportJob.objects.get(pk=export_id)
    try:
        plan = export_plan(job.kind, export_query(job.kind, job.params))
    except ApplicationError as exc:
        job.status, job.error, job.finished_at, job.lease_until = ExportJob.Status.FAILED, exc.message, now, None
        job.save(update_fields=["status", "error", "finished_at", "lease_until"])
        return job
    counted = _RowCounter(plan.rows, job)
    try:
        with tempfile.TemporaryFile() as scratch:
            write_file(job.format, plan.header, counted, scratch, title=job.kind)
            size = scratch.tell()
            scratch.seek(0)
            name = default_storage.save(f"exports/{job.pk}.{job.format}", File(scratch))
    except _LostClaim:
        logger.warning("export %s was taken over by another run; this one stops", export_id)
        return None
    except BaseException:
        # Free the claim at once so a retry can take it (instead of waiting for the lease to run out).
        with contextlib.suppress(DatabaseError):
            ExportJob.objects.filter(pk=job.pk, attempts=job.attempts, status=ExportJob.Status.RUNNING).update(
                status=ExportJob.Status.QUEUED, lease_until=None
            )
        raise
    finished = timezone.now()
    ExportJob.objects.filter(pk=job.pk, attempts=job.attempts).update(
        status=ExportJob.Status.DONE,
        rows=counted.count,
        file=name,
        size_bytes=size,
        finished_at=finished,
        expires_at=finished + timedelta(hours=settings.EXPORTS_EXPIRE_HOURS),
        lease_until=None,
        error="",
    )
    job.refresh_from_db()
    logger.info("export %s done: %s rows, %s bytes", export_id, counted.count, size)
    return job


class _RowCounter:
    """Passes rows through, counting them and renewing the job's lease every so often."""

    RENEW_EVERY = 10_000

    def __init__(self, rows: Iterator[tuple], job: ExportJob) -> None:
        self.rows = rows
        self.job = job
        self.count = 0

    def __iter__(self) -> Iterator[tuple]:
        for row in self.rows:
            self.count += 1
            if self.count % self.RENEW_EVERY == 0:
                renewed = ExportJob.objects.filter(
                    pk=self.job.pk, attempts=self.job.attempts, status=ExportJob.Status.RUNNING
                ).update(lease_until=timezone.now() + LEASE)
                if not renewed:
                    raise _LostClaim
            yield row


def export_job_mark_failed(*, export_id: str, error: str) -> None:
    """The task gave up after its retries."""
    ExportJob.objects.filter(pk=export_id).exclude(status=ExportJob.Status.DONE).update(
        status=ExportJob.Status.FAILED, error=error[:5000], finished_at=timezone.now(), lease_until=None
    )


def exports_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Delete the files of expired jobs, and queue again the jobs that lost their message or their worker."""
    now = now or timezone.now()
    expired = 0
    for job in ExportJob.objects.filter(status=ExportJob.Status.DONE, expires_at__lt=now).only("pk", "file"):
        if job.file:
            default_storage.delete(job.file)
        expired += ExportJob.objects.filter(pk=job.pk, status=ExportJob.Status.DONE).update(
            status=ExportJob.Status.EXPIRED, file=""
        )
    stale = ExportJob.objects.filter(
        Q(status=ExportJob.Status.QUEUED, created_at__lt=now - QUEUED_TOO_LONG)
        | Q(status=ExportJob.Status.RUNNING, lease_until__lt=now)
    )
    # A job whose runs keep dying (time limit, out of memory) fails rather than being queued again for ever.
    stale.filter(attempts__gte=settings.EXPORTS_MAX_ATTEMPTS).update(
        status=ExportJob.Status.FAILED,
        error=f"Gave up after {settings.EXPORTS_MAX_ATTEMPTS} attempts that did not finish.",
        finished_at=now,
        lease_until=None,
    )
    stale = list(stale.values_list("pk", flat=True)[:100])
    for export_id in stale:
        enqueue_export(export_id=str(export_id))
    return {"expired": expired, "requeued": len(stale)}


def download_signature(job: ExportJob) -> str:
    """The `signature` of a job's download link: the time it was made and a MAC of that and the job's id."""
    return _SIGNER.sign(str(job.pk)).split(_SIGNER.sep, 1)[1]


def export_job_check_download(
    *, job: ExportJob, user_id: int | None, is_admin: bool, signature: str | None, now: datetime | None = None
) -> None:
    """Raise ApplicationError unless this request may download the job's file.

    The rule: the job is done and not past `expires_at`, the request carries the signature of the job's
    download link, no older than the job's lifetime (finished to expires_at), and it comes from the user who
    created the job or from an admin. So a leaked link is useless without that user's credentials, and
    credentials without the link fetch nothing; a job whose creator was deleted is an admin's only."""
    now = now or timezone.now()
    if not is_admin and (job.created_by_id is None or job.created_by_id != user_id):
        raise ApplicationError(
            "Only the user who asked for this export, or an admin, may download it.", status_code=403
        )
    if job.status == ExportJob.Status.EXPIRED or (job.expires_at is not None and job.expires_at <= now):
        raise ApplicationError("This export expired; run it again.", status_code=410)
    if job.status != ExportJob.Status.DONE or not job.file or job.expires_at is None or job.finished_at is None:
        raise ApplicationError(f"This export is {job.status}, not done.", status_code=409)
    if not signature:
        raise ApplicationError(
            "Download through the job's download_url: it carries the signature this needs.",
            errors={"signature": ["Required."]},
            status_code=403,
        )
    try:
        _SIGNER.unsign(f"{job.pk}{_SIGNER.sep}{signature}", max_age=job.expires_at - job.finished_at)
    except signing.SignatureExpired:
        raise ApplicationError(
            "This download link is too old; the job's download_url gives a fresh one.",
            errors={"signature": ["Expired."]},
            status_code=410,
        ) from None
    except signing.BadSignature:
        raise ApplicationError(
            "This is not the signature of this job's download link.",
            errors={"signature": ["Invalid."]},
            status_code=403,
        ) from None

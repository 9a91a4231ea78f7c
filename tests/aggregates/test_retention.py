"""The retention purge: raw readings and rollups past their retention go, in chunks, logged and counted."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.aggregates.buckets import DAY, floor_to
from apps.aggregates.models import RollupDay, RollupHour, RollupState
from apps.aggregates.services import rollups_rebuild
from apps.ingest.models import Reading
from tests.aggregates.helpers import insert_raw
from workers.tasks.aggregates import purge_retention

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(world, settings):
    """Forty days of hourly readings of one sensor, rolled up; readings kept 10 days, rollups 30."""
    settings.READINGS_RETENTION_DAYS = 10
    settings.ROLLUPS_RETENTION_DAYS = 30
    sensor = world.sensors["env-001/temperature"]
    now = timezone.now()
    start = floor_to(now - timedelta(days=40), timedelta(hours=1))
    insert_raw(sensor.pk, start, count=40 * 24, step=timedelta(hours=1))
    rollups_rebuild(start=start, end=now + timedelta(hours=1))
    return {"now": now, "sensor": sensor}


def test_retention_deletes_only_what_is_older_than_the_limit(history, caplog):
    now = history["now"]
    readings_limit = now - timedelta(days=10)
    rollups_limit = floor_to(now - timedelta(days=30), DAY)
    readings_before = Reading.objects.filter(ts__lt=readings_limit).count()
    hours_before = RollupHour.objects.filter(bucket__lt=rollups_limit).count()
    days_before = RollupDay.objects.filter(bucket__lt=rollups_limit).count()
    kept = (
        Reading.objects.filter(ts__gte=readings_limit).count(),
        RollupHour.objects.filter(bucket__gte=rollups_limit).count(),
        RollupDay.objects.filter(bucket__gte=rollups_limit).count(),
    )

    with caplog.at_level(logging.INFO, logger="apps.aggregates.services"):
        outcome = purge_retention()

    assert not Reading.objects.filter(ts__lt=readings_limit).exists()
    assert not RollupHour.objects.filter(bucket__lt=rollups_limit).exists()
    assert not RollupDay.objects.filter(bucket__lt=rollups_limit).exists()
    assert (
        Reading.objects.count(),
        RollupHour.objects.count(),
        RollupDay.objects.count(),
    ) == kept  # nothing younger touched
    assert (outcome["readings"], outcome["hour_rollups"], outcome["day_rollups"]) == (
        readings_before,
        hours_before,
        days_before,
    )
    assert readings_before >= 30 * 24 and hours_before > 0 and days_before > 0
    assert outcome["more"] is False
    assert "retention purge" in caplog.text and f"'readings': {readings_before}" in caplog.text
    state = RollupState.objects.get()
    assert (state.last_purge_readings, state.last_purge_rollups) == (readings_before, hours_before + days_before)


def test_the_purge_goes_in_windows_and_queues_itself_when_its_budget_runs_out(history, settings, monkeypatch):
    settings.RETENTION_PURGE_CHUNK_MINUTES = 24 * 60
    settings.RETENTION_PURGE_BUDGET_S = 1
    requeued = []
    monkeypatch.setattr(purge_retention, "apply_async", lambda *args, **kwargs: requeued.append(True))
    clock = iter(range(0, 1000, 1))
    monkeypatch.setattr("apps.aggregates.services.time.monotonic", lambda: next(clock) * 0.4)
    statements = []

    def count_deletes(execute, sql, params, many, context):
        if sql.startswith("DELETE FROM ingest_reading"):
            statements.append(params)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count_deletes):
        first = purge_retention()

    assert first["more"] is True and requeued == [True]
    old = Reading.objects.filter(ts__lt=history["now"] - timedelta(days=10)).count() + first["readings"]
    assert 0 < first["readings"] < old
    assert all(high - low <= timedelta(days=1) for low, high in statements)
    monkeypatch.setattr("apps.aggregates.services.time.monotonic", lambda: 0.0)
    second = purge_retention()
    assert second["more"] is False and requeued == [True]
    assert first["readings"] + second["readings"] == old


def test_a_second_purge_finds_nothing(history):
    purge_retention()
    again = purge_retention()

    assert (again["readings"], again["hour_rollups"], again["day_rollups"]) == (0, 0, 0)

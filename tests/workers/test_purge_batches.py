"""The daily purge of finished ingest batches keeps what anything still needs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.aggregates.models import RollupState
from apps.ingest.models import IngestBatch
from workers.tasks.ingest import purge_batches

pytestmark = pytest.mark.django_db


def _batch(*, days_ago: float, status: str = "done", evaluated: bool = True) -> IngestBatch:
    finished = timezone.now() - timedelta(days=days_ago)
    return IngestBatch.objects.create(
        received_at=finished, finished_at=finished, status=status, evaluated_at=finished if evaluated else None
    )


def test_old_finished_batches_go_and_the_rest_stay(settings):
    settings.INGEST_BATCH_RETENTION_DAYS = 14
    RollupState.objects.update_or_create(pk=RollupState.SINGLETON, defaults={"watermark": timezone.now()})
    old = _batch(days_ago=20)
    recent = _batch(days_ago=2)
    failed = _batch(days_ago=20, status="failed")
    unevaluated = _batch(days_ago=20, evaluated=False)

    assert purge_batches() == 1

    remaining = set(IngestBatch.objects.values_list("pk", flat=True))
    assert old.pk not in remaining
    assert {recent.pk, failed.pk, unevaluated.pk} <= remaining


def test_batches_the_rollups_have_not_taken_in_stay(settings):
    settings.INGEST_BATCH_RETENTION_DAYS = 14
    RollupState.objects.update_or_create(
        pk=RollupState.SINGLETON, defaults={"watermark": timezone.now() - timedelta(days=30)}
    )
    waiting_for_rollups = _batch(days_ago=20)

    assert purge_batches() == 0
    assert IngestBatch.objects.filter(pk=waiting_for_rollups.pk).exists()

    RollupState.objects.filter(pk=RollupState.SINGLETON).update(watermark=None)
    assert purge_batches() == 0  # rollups never ran: keep everything

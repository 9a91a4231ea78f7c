"""Idempotency-Key on POST /api/v1/ingest/ and the CSV import: a retry gets the first request's batch."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.roles import Role
from apps.ingest.idempotency import KEY_TTL, idempotency_keys_purge
from apps.ingest.models import IdempotencyKey, IngestBatch
from apps.ingest.pipeline import batch_process
from tests.concurrency import at_once
from tests.factories import assert_error_shape, make_user, token_client
from tests.ingest.helpers import INGEST
from tests.ingest.test_import import HEADER, _good_lines, upload

pytestmark = pytest.mark.django_db

READINGS = [{"sensor": "env-001/temperature", "value": 20.0}, {"sensor": "env-001/humidity", "value": 50.0}]


def post(client, body, key: str | None = "retry-1"):
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.generic("POST", INGEST, json.dumps(body), content_type="application/json", headers=headers)


def test_a_retry_with_the_same_key_answers_the_first_batch_and_stores_nothing_twice(world, device_api):
    first = post(device_api, READINGS)
    batch_process(batch_id=first.json()["batch_id"])
    retry = post(device_api, READINGS)

    assert (first.status_code, retry.status_code) == (202, 202)
    assert retry.json()["batch_id"] == first.json()["batch_id"]
    assert retry["Location"] == first["Location"]
    assert retry["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert (retry.json()["status"], retry.json()["stored"]) == ("done", 2)  # the batch as it is now
    assert IngestBatch.objects.count() == 1


def test_a_key_reused_for_another_body_is_a_422(world, device_api):
    assert post(device_api, READINGS).status_code == 202

    response = post(device_api, READINGS[:1])

    assert response.status_code == 422
    assert_error_shape(response, "Idempotency-Key")
    assert IngestBatch.objects.count() == 1


def test_a_key_whose_batch_was_deleted_is_a_422(world, device_api):
    IngestBatch.objects.filter(pk=post(device_api, READINGS).json()["batch_id"]).delete()

    response = post(device_api, READINGS)

    assert response.status_code == 422
    assert_error_shape(response, "Idempotency-Key")


def test_keys_belong_to_their_sender(world, device_api, admin_api):
    assert post(device_api, READINGS).status_code == 202
    other = post(admin_api, READINGS)

    assert other.status_code == 202 and "Idempotent-Replayed" not in other
    assert IngestBatch.objects.count() == 2


def test_without_a_key_every_request_is_a_new_batch(world, device_api):
    assert (
        post(device_api, READINGS, key=None).json()["batch_id"]
        != post(device_api, READINGS, key=None).json()["batch_id"]
    )


def test_a_structurally_bad_request_does_not_take_its_key(world, device_api):
    assert post(device_api, [{"sensor": "env-001/temperature"}]).status_code == 400
    assert post(device_api, READINGS).status_code == 202
    assert IngestBatch.objects.count() == 1


@pytest.mark.parametrize("key", ["", "k" * 256, "naïve", "tab\there"])
def test_a_malformed_key_is_a_400(world, device_api, key):
    response = post(device_api, READINGS, key=key)

    assert response.status_code == 400
    assert_error_shape(response, "Idempotency-Key")


def test_an_expired_key_may_be_used_again_and_is_purged(world, device_api):
    first = post(device_api, READINGS)
    IdempotencyKey.objects.update(created_at=timezone.now() - KEY_TTL - timedelta(minutes=1))

    again = post(device_api, READINGS)

    assert again.status_code == 202 and again.json()["batch_id"] != first.json()["batch_id"]
    assert "Idempotent-Replayed" not in again
    assert IdempotencyKey.objects.get().batch_ids == [IngestBatch.objects.get(pk=again.json()["batch_id"]).pk]
    assert idempotency_keys_purge(now=timezone.now() + KEY_TTL + timedelta(minutes=1)) == 1
    assert IdempotencyKey.objects.count() == 0


def test_a_csv_import_retried_with_its_key_answers_the_first_batches(world, operator_api):
    content = HEADER + _good_lines(3)
    first = upload(operator_api, content, **{"Idempotency-Key": "import-1"})
    retry = upload(operator_api, content, **{"Idempotency-Key": "import-1"})
    changed = upload(operator_api, content + _good_lines(1), **{"Idempotency-Key": "import-1"})

    assert (first.status_code, retry.status_code, changed.status_code) == (202, 202, 422)
    assert retry.json()["batches"] == first.json()["batches"] and retry.json()["rows"] == 3
    assert retry["Idempotent-Replayed"] == "true"
    assert IngestBatch.objects.count() == 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_key_make_one_batch(world, celery_worker, wait_for):
    """Requests with the same key at the same moment: the unique constraint makes the others wait for the
    first and answer with its batch, which the worker then stores once. (Transactional, so the requests'
    threads see the world; the worker stores the batch they queue.)"""
    _, token = make_user("gateway", Role.OPERATOR)

    answers = at_once(lambda: post(token_client(token), READINGS, key="same-moment"), 4)

    assert [answer.status_code for answer in answers] == [202] * 4
    assert len({answer.json()["batch_id"] for answer in answers}) == 1
    assert sum("Idempotent-Replayed" in answer for answer in answers) == 3
    batch = wait_for(lambda: IngestBatch.objects.filter(status="done").first(), timeout=30)
    assert (IngestBatch.objects.count(), batch.stored) == (1, 2)

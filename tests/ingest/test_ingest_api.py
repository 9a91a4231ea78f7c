"""POST /api/v1/ingest/ and GET /api/v1/ingest/batches/{id}/: structure checks, limits, who may send and see."""

from __future__ import annotations

import pytest
from django.test import override_settings

from apps.core.tasks import PROCESS_BATCH_TASK
from apps.ingest.models import IngestBatch
from tests.factories import API, assert_error_shape
from tests.ingest.helpers import INGEST, ingest, post_readings

pytestmark = pytest.mark.django_db


def test_accepted_request_answers_202_with_the_batch_and_queues_one_task_after_commit(
    world, admin_api, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr(
        "apps.ingest.services.current_app.send_task", lambda name, args, **options: sent.append((name, args))
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_readings(admin_api, [{"sensor": "env-001/temperature", "value": 20.0}] * 3)
        assert sent == []  # nothing leaves before the batch row is committed
    for callback in callbacks:
        callback()

    assert response.status_code == 202
    body = response.json()
    assert set(body) >= {"batch_id", "status", "received", "stored", "duplicates", "rejected", "errors"}
    assert (body["status"], body["received"], body["stored"]) == ("queued", 3, 0)
    assert response["Location"] == f"{API}/ingest/batches/{body['batch_id']}/"
    assert sent == [(PROCESS_BATCH_TASK, [body["batch_id"]])]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ([{"sensor": "env-001/temperature"}], ["readings[0].value"]),
        ([{"sensor": 12, "value": 1}], ["readings[0].sensor"]),
        ([{"sensor": "env-001/temperature", "value": 1, "ts": "yesterday"}], ["readings[0].ts"]),
        ([{"sensor": "env-001/temperature", "value": True}], ["readings[0].value"]),
        ([{"sensor": "env-001/temperature", "value": {"v": 1}}], ["readings[0].value"]),
        ([{"device_id": "env-001", "measurements": []}], ["readings[0].measurements"]),
        (
            [{"device_id": "env-001", "measurements": [{"val": 1}, {"type": "temperature"}, 5]}],
            ["readings[0].measurements[0].type", "readings[0].measurements[1].val", "readings[0].measurements[2]"],
        ),
        ([{"device_id": "env-001", "seq": -1, "measurements": [{"type": "t", "val": 1}]}], ["readings[0].seq"]),
        (
            [{"device_id": "env-001", "msg_type": "hello", "measurements": [{"type": "t", "val": 1}]}],
            ["readings[0].msg_type"],
        ),
        ([{"device_id": "env-001", "ts": "2026-02-12T16:00:00Z"}], ["readings[0].non_field_errors"]),
        ([{"device_id": "env-001", "temperature_c": [1]}], ["readings[0].temperature_c"]),
        ([{"hello": "world"}, 7], ["readings[0]", "readings[1]"]),
        ([], ["readings"]),
        ("just text", ["non_field_errors"]),
    ],
)
def test_structurally_bad_request_is_400_naming_index_and_field_and_queues_nothing(world, admin_api, body, fields):
    response = post_readings(admin_api, body)

    assert response.status_code == 400, response.content
    assert_error_shape(response, *fields)
    assert IngestBatch.objects.count() == 0


def test_one_bad_item_refuses_the_whole_request(world, admin_api):
    good = {"sensor": "env-001/temperature", "value": 20.0}
    response = post_readings(admin_api, [good, good, {"sensor": "env-001/temperature"}, good])

    assert response.status_code == 400
    assert list(assert_error_shape(response)["errors"]) == ["readings[2].value"]
    assert IngestBatch.objects.count() == 0


def test_malformed_json_is_400(admin_api):
    response = admin_api.post(INGEST, data=b"{not json", content_type="application/json")
    assert response.status_code == 400
    assert_error_shape(response)


@override_settings(INGEST_MAX_READINGS_PER_REQUEST=5)
def test_too_many_readings_is_413_with_the_limit_and_queues_nothing(world, admin_api):
    response = post_readings(admin_api, [{"sensor": "env-001/temperature", "value": n} for n in range(6)])

    assert response.status_code == 413
    assert "5" in assert_error_shape(response, "readings")["detail"]
    assert IngestBatch.objects.count() == 0

    datagram = {"device_id": "env-001", "measurements": [{"type": "temperature", "val": n} for n in range(6)]}
    assert post_readings(admin_api, datagram).status_code == 413
    assert (
        post_readings(admin_api, [{"sensor": "env-001/temperature", "value": n} for n in range(5)]).status_code == 202
    )


def test_device_key_may_not_send_another_devices_datagram(world, device_api):
    response = post_readings(device_api, {"device_id": "env-002", "measurements": [{"type": "temperature", "val": 20}]})
    assert response.status_code == 400
    assert "env-001" in assert_error_shape(response, "readings[0].device_id")["errors"]["readings[0].device_id"][0]
    assert IngestBatch.objects.count() == 0


def test_who_may_send_readings(world, api_as):
    reading = {"sensor": "env-001/temperature", "value": 20.0}
    expected = {"anonymous": 401, "viewer": 403, "operator": 202, "admin": 202, "device": 202}
    answers = {principal: post_readings(api_as(principal), reading).status_code for principal in expected}
    assert answers == expected


def test_a_device_sees_only_its_own_batches(world, device_api, admin_api):
    own = ingest(device_api, {"sensor": "env-001/temperature", "value": 20.0})
    foreign = ingest(admin_api, {"sensor": "env-002/temperature", "value": 20.0})

    assert device_api.get(f"{API}/ingest/batches/{own.pk}/").json()["stored"] == 1
    assert device_api.get(f"{API}/ingest/batches/{foreign.pk}/").status_code == 404
    assert admin_api.get(f"{API}/ingest/batches/{own.pk}/").status_code == 200


def test_batch_status_reports_counts_and_reject_samples(world, admin_api, viewer_api):
    batch = ingest(admin_api, [{"sensor": "nope", "value": 1}, {"sensor": "env-001/temperature", "value": 20.0}])

    body = viewer_api.get(f"{API}/ingest/batches/{batch.pk}/").json()

    assert (body["status"], body["received"], body["stored"], body["rejected"]) == ("done", 2, 1, 1)
    assert body["rejected_by_reason"] == {"unknown_sensor": 1}
    assert body["errors"][0]["reason"] == "unknown_sensor" and body["errors"][0]["index"] == 0


def test_unknown_batch_is_404(admin_api):
    response = admin_api.get(f"{API}/ingest/batches/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404
    assert_error_shape(response)

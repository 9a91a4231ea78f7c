"""Rate limits per token, per device key, and in readings for ingest: 429 with Retry-After."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import override_settings

from apps.ingest.models import IngestBatch
from tests.factories import API, assert_error_shape
from tests.ingest.helpers import post_readings

pytestmark = pytest.mark.django_db

OFF = {"token": None, "device": None, "ingest_readings": None}


@pytest.fixture(autouse=True)
def empty_throttle_counters():
    cache.clear()
    yield
    cache.clear()


@override_settings(THROTTLE_RATES={**OFF, "token": "3/minute"})
def test_a_token_over_its_request_rate_gets_429_with_retry_after(world, viewer_api, operator_api):
    answers = [viewer_api.get(f"{API}/locations/").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    refused = viewer_api.get(f"{API}/locations/")
    assert 0 < int(refused["Retry-After"]) <= 60
    assert_error_shape(refused)
    assert operator_api.get(f"{API}/locations/").status_code == 200  # another token has its own budget


@override_settings(THROTTLE_RATES={**OFF, "device": "2/minute"})
def test_a_device_key_over_its_request_rate_gets_429(world, device_api):
    device_id = world.devices["env-001"].pk
    answers = [
        device_api.post(f"{API}/devices/{device_id}/heartbeat/", {}, format="json").status_code for _ in range(3)
    ]
    assert answers == [200, 200, 429]


@override_settings(THROTTLE_RATES={**OFF, "ingest_readings": "10/minute"})
def test_ingest_limits_count_readings_not_requests(world, device_api):
    seven = [{"sensor": "env-001/temperature", "value": float(n)} for n in range(7)]
    assert post_readings(device_api, seven).status_code == 202
    refused = post_readings(device_api, seven)  # 14 readings would exceed 10, though it is only the 2nd request
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert post_readings(device_api, seven[:3]).status_code == 202  # the refused one spent nothing
    assert IngestBatch.objects.count() == 2

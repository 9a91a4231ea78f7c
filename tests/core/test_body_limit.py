"""Request bodies over their limit are refused before they are read, with a 413 in the error shape, on every path."""

from __future__ import annotations

import io
import json

import pytest
from django.core.exceptions import RequestDataTooBig
from django.test import RequestFactory, override_settings

from apps.core.handlers import bad_request
from apps.ingest.models import IngestBatch
from tests.factories import API, assert_error_shape
from tests.ingest.helpers import INGEST

pytestmark = pytest.mark.django_db


class UnreadableBody(io.RawIOBase):
    """A request body that fails the test if anything reads it."""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")

    readinto = read


class EndlessBody(io.RawIOBase):
    """A chunked body that never ends; reading more than a megabyte of it fails the test."""

    def __init__(self) -> None:
        self.served = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        assert 0 <= size and self.served + size <= 1_000_000, "read without a bound"
        self.served += size
        return b" " * size


def _readings(count: int) -> bytes:
    return json.dumps([{"sensor": "env-001/temperature", "value": 20.0}] * count).encode()


def _post_declared(client, path: str, length: int, content_type: str = "application/json"):
    """A POST announcing `length` bytes of body that must never be read."""
    environ = {"wsgi.input": UnreadableBody(), "CONTENT_LENGTH": str(length)}
    return client.generic("POST", path, b"", content_type=content_type, **environ)


def _post_chunked(client, path: str, body: bytes | io.RawIOBase):
    """A POST with a chunked body, as gunicorn hands it on: no Content-Length, the stream ends with the body."""
    stream = io.BytesIO(body) if isinstance(body, bytes) else body
    environ = {"wsgi.input": stream, "wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"}
    return client.generic("POST", path, b"", content_type="application/json", **environ)


@override_settings(INGEST_MAX_BODY_BYTES=10_000)
def test_an_ingest_body_over_its_limit_is_a_413_before_it_is_read(world, admin_api):
    response = _post_declared(admin_api, INGEST, 10_001)

    assert response.status_code == 413
    assert "10000 bytes" in assert_error_shape(response, "non_field_errors")["detail"]
    assert IngestBatch.objects.count() == 0


def test_the_ingest_limit_follows_the_reading_limit_by_default(settings):
    assert settings.INGEST_MAX_BODY_BYTES == settings.INGEST_MAX_READINGS_PER_REQUEST * 512
    # 10,000 readings in the most verbose shape fit with room to spare.
    assert len(_readings(settings.INGEST_MAX_READINGS_PER_REQUEST)) < settings.INGEST_MAX_BODY_BYTES / 4


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=4096)
def test_every_other_api_path_has_the_general_limit(world, admin_api):
    response = _post_declared(admin_api, f"{API}/locations/", 4097)

    assert response.status_code == 413
    assert_error_shape(response, "non_field_errors")
    assert admin_api.post(f"{API}/locations/", {"name": "Small", "kind": "site"}, format="json").status_code == 201


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=4096)
def test_a_page_outside_the_api_over_the_limit_is_a_plain_413(admin_client):
    response = _post_declared(admin_client, "/admin/login/", 5000, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/plain")


@override_settings(INGEST_MAX_BODY_BYTES=10_000)
def test_a_chunked_body_is_read_up_to_the_limit_only(world, admin_api):
    small = _readings(3)
    accepted = _post_chunked(admin_api, INGEST, small)
    assert accepted.status_code == 202, accepted.content
    assert accepted.json()["received"] == 3

    too_big = _post_chunked(admin_api, INGEST, _readings(500))
    assert too_big.status_code == 413
    assert_error_shape(too_big, "non_field_errors")

    endless = EndlessBody()
    assert _post_chunked(admin_api, INGEST, endless).status_code == 413
    assert endless.served == 10_001
    assert IngestBatch.objects.count() == 1


@override_settings(INGEST_MAX_BODY_BYTES=100_000, DATA_UPLOAD_MAX_MEMORY_SIZE=2048)
def test_djangos_own_limit_met_while_reading_the_body_is_the_same_json_413(world, admin_api):
    response = admin_api.generic("POST", INGEST, _readings(100), content_type="application/json")

    assert response.status_code == 413
    assert "2048 bytes" in assert_error_shape(response, "non_field_errors")["detail"]


def test_djangos_400_handler_answers_413_for_a_body_too_large():
    response = bad_request(RequestFactory().post("/api/v1/devices/"), RequestDataTooBig("too big"))

    assert response.status_code == 413
    assert set(json.loads(response.content)) == {"detail", "errors"}
    assert bad_request(RequestFactory().post("/api/v1/devices/"), ValueError()).status_code == 400

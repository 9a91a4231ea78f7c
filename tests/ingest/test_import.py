"""CSV uploads are bounded, checked whole before anything is committed, and never a 500 for bad bytes; the
import_readings command keeps naming and skipping bad lines of a file."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command
from django.test import override_settings

from apps.ingest.models import IngestBatch, Reading
from tests.factories import API, assert_error_shape

pytestmark = pytest.mark.django_db

IMPORT = f"{API}/ingest/import/"
HEADER = b"sensor,ts,value\n"


def _good_lines(count: int) -> bytes:
    return b"".join(b"env-001/temperature,2026-01-01T%02d:%02d:00Z,20.5\n" % divmod(n, 60) for n in range(count))


def upload(client, content: bytes, **headers):
    file = io.BytesIO(content)
    file.name = "readings.csv"
    return client.post(IMPORT, {"file": file}, format="multipart", headers=headers)


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        (b"env-001/temperature,2026-01-01T00:00:00Z,\xff\xfe1\n", "Not UTF-8"),
        (b"env-001/\xe9temperature,2026-01-01T00:00:00Z,1\n", "Not UTF-8"),
        (b"env-001/temperature\x00,2026-01-01T00:00:00Z,1\n", "control characters"),
        (b"env-001/temperature,yesterday,1\n", "Not a timestamp"),
        (b"env-001/temperature,2026-01-01T00:00:00Z\n", "columns"),
        (b'"' + b"a" * (csv.field_size_limit() + 10) + b'",2026-01-01T00:00:00Z,1\n', "Unreadable CSV"),
    ],
)
@override_settings(INGEST_MAX_READINGS_PER_REQUEST=5)
def test_a_bad_line_anywhere_refuses_the_whole_file_naming_the_line_and_commits_nothing(
    world, operator_api, bad_line, message, django_capture_on_commit_callbacks
):
    # Four chunks of good lines come first: none of them may be kept.
    content = HEADER + _good_lines(20) + bad_line + _good_lines(3)
    with django_capture_on_commit_callbacks() as callbacks:
        response = upload(operator_api, content)

    assert response.status_code == 400, response.content
    body = assert_error_shape(response, "line 22")
    assert message in body["detail"]
    assert IngestBatch.objects.count() == 0
    assert callbacks == []  # nothing queued


@override_settings(INGEST_MAX_READINGS_PER_REQUEST=5)
def test_a_good_file_is_queued_in_chunks_after_commit(world, operator_api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = upload(operator_api, "\ufeff".encode() + HEADER + _good_lines(12))

    assert response.status_code == 202, response.content
    assert response.json()["rows"] == 12
    assert [batch["received"] for batch in response.json()["batches"]] == [5, 5, 2]
    assert IngestBatch.objects.filter(source="import").count() == 3
    assert len(callbacks) >= 3


@override_settings(INGEST_MAX_IMPORT_BYTES=2048)
def test_a_file_over_the_upload_limit_is_a_413(world, operator_api):
    response = upload(operator_api, HEADER + _good_lines(100))

    assert response.status_code == 413
    assert "2048 bytes" in assert_error_shape(response, "non_field_errors")["detail"]
    assert IngestBatch.objects.count() == 0


def test_the_import_command_names_and_skips_undecodable_and_unreadable_lines(world, tmp_path):
    path = tmp_path / "readings.csv"
    path.write_bytes(
        HEADER
        + b"env-001/temperature,2026-01-01T00:00:00Z,\xff1\n"
        + b'"' + b"a" * (csv.field_size_limit() + 10) + b'",2026-01-01T00:00:00Z,1\n'
        + b"env-001/temperature,2026-01-01T00:01:00Z,21\n"
    )  # fmt: skip
    err = io.StringIO()

    call_command("import_readings", str(path), stdout=io.StringIO(), stderr=err)

    assert "line 2: row: Not UTF-8 text. (skipped)" in err.getvalue()
    assert "line 3: Unreadable CSV" in err.getvalue()
    assert list(Reading.objects.values_list("value", flat=True)) == [21.0]

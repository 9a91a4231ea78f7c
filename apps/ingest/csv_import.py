"""Historical readings from CSV (header: sensor,ts,value), normalised in chunks for the ingest pipeline."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import BinaryIO

from django.db import transaction

from apps.core.errors import ApplicationError
from apps.ingest.adapters import IngestContext, ItemErrors, value_of
from apps.ingest.models import IngestBatch
from apps.ingest.payload import NormalizedBatch, key_ref
from apps.ingest.services import batch_create
from apps.ingest.text import has_undecodable, identifier_error

REQUIRED_COLUMNS = ("sensor", "ts", "value")


def csv_rows(stream: BinaryIO | io.TextIOBase) -> Iterator[list[str]]:
    """The rows of a CSV file. Bytes that are not UTF-8 do not stop the reading: they arrive as lone
    surrogates, and the line that holds them is named as malformed."""
    if not isinstance(stream, io.TextIOBase):
        stream = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    return csv.reader(stream)


def normalize_csv_rows(
    rows: Iterator[list[str]],
    *,
    received_at: datetime,
    chunk_size: int,
    on_error: Callable[[int, str], None] | None = None,
) -> Iterator[NormalizedBatch]:
    """Yield chunks of at most `chunk_size` readings. A malformed line (also one the CSV reader cannot read,
    such as a field over csv.field_size_limit()) is passed to `on_error(line, message)` and skipped; without
    `on_error` it raises ApplicationError naming the line."""

    def malformed(line: int, message: str) -> None:
        if on_error is None:
            raise ApplicationError(f"Line {line}: {message}", errors={f"line {line}": [message]})
        on_error(line, message)

    header = _next_row(rows, 1, malformed) or []
    header = [column.strip().lower() for column in header]
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise ApplicationError(
            f"The CSV header must name the columns {', '.join(REQUIRED_COLUMNS)}; missing: {', '.join(missing)}.",
            errors={"file": [f"Missing column(s): {', '.join(missing)}."]},
        )
    sensor_col, ts_col, value_col = (header.index(column) for column in REQUIRED_COLUMNS)
    width = max(sensor_col, ts_col, value_col) + 1
    context = IngestContext(received_at=received_at, device_id=None, field_maps={})
    line = 1
    while True:
        line += 1
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            malformed(line, f"Unreadable CSV: {exc}.")
            continue
        if not row or not any(cell.strip() for cell in row):
            continue
        errors = ItemErrors()
        if len(row) < width:
            errors.add("row", f"Expected at least {width} columns.")
        elif has_undecodable(row):
            errors.add("row", "Not UTF-8 text.")
        else:
            sensor = row[sensor_col].strip()
            problem = "Empty." if not sensor else identifier_error(sensor)
            if problem:
                errors.add("sensor", problem)
            ts = context.timestamp(row[ts_col].strip() or None, errors, "ts")
            ok, value = value_of(row[value_col].strip(), errors, "value")
        if errors:
            malformed(line, "; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items()))
            continue
        if value is None:
            context.batch.note_bad_value(row[value_col])
        context.batch.add(key_ref(sensor), ts, value, line)
        if len(context.batch) >= chunk_size:
            yield context.batch
            context.batch = NormalizedBatch()
    if len(context.batch):
        yield context.batch


def _next_row(rows: Iterator[list[str]], line: int, malformed: Callable[[int, str], None]) -> list[str] | None:
    try:
        return next(rows, None)
    except csv.Error as exc:
        malformed(line, f"Unreadable CSV: {exc}.")
        return None


def csv_import_create(
    *, stream: BinaryIO, received_at: datetime, user_pk: int | None, chunk_size: int
) -> tuple[list[IngestBatch], int]:
    """(batches, rows) of a whole uploaded file, all or nothing: the file is read to its end in one
    transaction, so a malformed line anywhere refuses it (ApplicationError naming the line) and nothing is
    committed or queued."""
    batches: list[IngestBatch] = []
    rows = 0
    with transaction.atomic():
        for chunk in normalize_csv_rows(csv_rows(stream), received_at=received_at, chunk_size=chunk_size):
            rows += len(chunk)
            batches.append(
                batch_create(
                    normalized=chunk, received_at=received_at, source=IngestBatch.Source.IMPORT, user_pk=user_pk
                )
            )
    return batches, rows

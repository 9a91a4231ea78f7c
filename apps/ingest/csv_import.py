"""Historical readings from CSV (header: sensor,ts,value), normalised in chunks for the ingest pipeline."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from apps.core.errors import ApplicationError
from apps.ingest.adapters import IngestContext, ItemErrors, value_of
from apps.ingest.payload import NormalizedBatch, key_ref

REQUIRED_COLUMNS = ("sensor", "ts", "value")


def normalize_csv_rows(
    rows: Iterable[list[str]],
    *,
    received_at: datetime,
    chunk_size: int,
    on_error: Callable[[int, str], None] | None = None,
) -> Iterator[NormalizedBatch]:
    """Yield chunks of at most `chunk_size` readings. A malformed line is passed to `on_error(line, message)`
    and skipped; without `on_error` it raises ApplicationError naming the line."""
    iterator = iter(rows)
    header = [column.strip().lower() for column in next(iterator, [])]
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise ApplicationError(
            f"The CSV header must name the columns {', '.join(REQUIRED_COLUMNS)}; missing: {', '.join(missing)}.",
            errors={"file": [f"Missing column(s): {', '.join(missing)}."]},
        )
    sensor_col, ts_col, value_col = (header.index(column) for column in REQUIRED_COLUMNS)
    width = max(sensor_col, ts_col, value_col) + 1
    context = IngestContext(received_at=received_at, device_id=None, field_maps={})
    for line, row in enumerate(iterator, start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        errors = ItemErrors()
        if len(row) < width:
            errors.add("row", f"Expected at least {width} columns.")
        else:
            sensor = row[sensor_col].strip()
            if not sensor:
                errors.add("sensor", "Empty.")
            ts = context.timestamp(row[ts_col].strip() or None, errors, "ts")
            ok, value = value_of(row[value_col].strip(), errors, "value")
        if errors:
            message = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items())
            if on_error is None:
                raise ApplicationError(f"Line {line}: {message}", errors={f"line {line}": [message]})
            on_error(line, message)
            continue
        if value is None:
            context.batch.note_bad_value(row[value_col])
        context.batch.add(key_ref(sensor), ts, value, line)
        if len(context.batch) >= chunk_size:
            yield context.batch
            context.batch = NormalizedBatch()
    if len(context.batch):
        yield context.batch

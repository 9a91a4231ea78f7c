"""Export file formats. Rows come from an iterator and leave in chunks, so memory does not grow with rows.

CSV and NDJSON are produced as a stream of byte chunks. XLSX is a zip archive that can only be finished at
the end, so it is written through openpyxl's write-only mode (rows go to a temporary file as they come) into
a file, which is then streamed.

Text cells (sensor keys, location paths: names people typed) may start like a formula. Spreadsheets run
those when a CSV is opened, so in CSV such text gets a leading apostrophe ('=1+2), which they show as text;
in XLSX every text is written as a string cell, never as a formula or an error value, so it keeps its exact
characters. Numbers are never touched: -3.5 stays a number in both.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import IO

import orjson
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES

FORMATS = ("csv", "ndjson", "xlsx")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# One XLSX sheet holds 1,048,576 rows; longer exports continue on further sheets, each with the header.
XLSX_ROWS_PER_SHEET = 1_048_575
_CHUNK_ROWS = 2000
# What spreadsheets take for the start of a formula (tab and carriage return too: some strip them first).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(row: tuple) -> tuple:
    """The row with text that would start a formula quoted by a leading apostrophe."""
    if not any(type(value) is str and value.startswith(FORMULA_STARTS) for value in row):
        return row
    return tuple("'" + value if type(value) is str and value.startswith(FORMULA_STARTS) else value for value in row)


def csv_chunks(header: list[str], rows: Iterable[tuple]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    pending = 0
    for row in rows:
        writer.writerow(csv_safe(row))
        pending += 1
        if pending >= _CHUNK_ROWS:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    yield buffer.getvalue().encode()


def ndjson_chunks(header: list[str], rows: Iterable[tuple]) -> Iterator[bytes]:
    lines: list[bytes] = []
    for row in rows:
        lines.append(orjson.dumps(dict(zip(header, row, strict=True))))
        if len(lines) >= _CHUNK_ROWS:
            yield b"\n".join(lines) + b"\n"
            lines = []
    if lines:
        yield b"\n".join(lines) + b"\n"


def _xlsx_row(sheet, row: tuple) -> tuple:
    """openpyxl makes a formula of text starting with "=" and an error value of "#N/A" and the like: such
    text goes in as an explicit string cell instead."""
    if not any(type(value) is str and (value.startswith("=") or value in ERROR_CODES) for value in row):
        return row
    return tuple(_string_cell(sheet, value) if type(value) is str else value for value in row)


def _string_cell(sheet, text: str) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=text)
    cell.data_type = "s"
    return cell


def write_xlsx(header: list[str], rows: Iterable[tuple], target: IO[bytes], *, title: str) -> None:
    workbook = Workbook(write_only=True)
    sheet = None
    in_sheet = XLSX_ROWS_PER_SHEET
    sheets = 0
    for row in rows:
        if in_sheet >= XLSX_ROWS_PER_SHEET:
            sheets += 1
            sheet = workbook.create_sheet(title if sheets == 1 else f"{title} {sheets}")
            sheet.append(header)
            in_sheet = 0
        sheet.append(_xlsx_row(sheet, row))
        in_sheet += 1
    if sheet is None:
        workbook.create_sheet(title).append(header)
    workbook.save(target)


def write_file(format: str, header: list[str], rows: Iterable[tuple], target: IO[bytes], *, title: str) -> None:
    if format == "xlsx":
        write_xlsx(header, rows, target, title=title)
        return
    chunks = csv_chunks(header, rows) if format == "csv" else ndjson_chunks(header, rows)
    for chunk in chunks:
        target.write(chunk)


def file_chunks(source: IO[bytes], *, size: int = 64 * 1024) -> Iterator[bytes]:
    """A file's content in chunks; closes it at the end (or when the consumer stops early)."""
    try:
        while chunk := source.read(size):
            yield chunk
    finally:
        source.close()

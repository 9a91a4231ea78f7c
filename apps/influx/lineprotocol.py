"""The InfluxDB line protocol, read as the InfluxDB v2 reference defines it:

    measurement[,tag_key=tag_value...] field_key=field_value[,field_key=field_value...] [timestamp]

Field values are floats (`21.5`, `-1.5e3`), integers (`42i`, int64), unsigned integers (`42u`, uint64), strings
(`"text"`, with `\\"` and `\\\\` escaped; they may span lines) and booleans (`t`, `T`, `true`, `True`, `TRUE`, and
the same for false). In the measurement, commas and spaces are escaped with a backslash; in tag keys, tag values
and field keys, commas, spaces and equals signs; a backslash before any other character is kept as it is. The
timestamp is an int64 in the request's precision. Lines starting with `#` are comments; blank lines are skipped.

This is a hot path (Telegraf sends thousands of lines per request). A line without a backslash or a double
quote, which is nearly every line, is cut with str.split; a line with escapes but no string value is cut the
same way once its escape pairs are swapped for placeholders; only lines with string values go through the
escape-aware scanner. All three read a line alike (tested), and docs/protocols.md has their cost.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import NamedTuple

FieldValue = float | int | bool | str

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1

_BOOLEANS = {
    **dict.fromkeys(("t", "T", "true", "True", "TRUE"), True),
    **dict.fromkeys(("f", "F", "false", "False", "FALSE"), False),
}
# What surrounds a line and may follow its last section (\r of a CRLF line end).
_BLANKS = " \t\r"
# The last character of a float: a digit or the point of "1."; a suffix or a letter means another type.
_FLOAT_ENDS = frozenset("0123456789.")

# In the escape-aware scanner: names and bare values end at a newline; only a string value may span lines.
_MEASUREMENT = re.compile(r"(?:[^\\, \n]|\\.)+")
_NAME = re.compile(r"(?:[^\\,= \n]|\\.)+")
_QUOTED = re.compile(r'"([^\\"]*(?:\\.[^\\"]*)*)"', re.DOTALL)  # unrolled: linear even without a closing quote
_BARE_VALUE = re.compile(r"[^, \r\n]+")
# InfluxDB's limit on a string field value.
MAX_STRING = 64 * 1024
_SPACES = re.compile(r" +")
_NAME_ESCAPE = re.compile(r"\\([,= ])")
_MEASUREMENT_ESCAPE = re.compile(r"\\([, ])")  # as InfluxDB: "\=" stays in a measurement
_STRING_ESCAPE = re.compile(r'\\(["\\])')
# Escape pairs outside strings and the characters that stand in for them while a line is cut (a line that holds
# one of those characters itself goes to the scanner). "\\\\" comes first: it is a pair of its own, so the
# character after it is not escaped, and it stays as it is, as in the scanner.
_PROTECTED_PAIRS = (("\\\\", "\x00"), ("\\,", "\x01"), ("\\=", "\x02"), ("\\ ", "\x03"))
_RESTORE = str.maketrans({"\x00": "\\\\", "\x01": ",", "\x02": "=", "\x03": " "})
_RESTORE_MEASUREMENT = str.maketrans({"\x00": "\\\\", "\x01": ",", "\x02": "\\=", "\x03": " "})
_PLACEHOLDERS = re.compile("[\x00-\x03]")
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that decode_body could not read, as surrogateescape keeps them


class Point(NamedTuple):
    line: int  # 1-based number of the line the point starts on
    measurement: str
    tags: dict[str, str]
    fields: list[tuple[str, FieldValue]]
    timestamp: int | None  # as sent, in the request's precision


class LineError(NamedTuple):
    line: int
    message: str


class LineSyntaxError(ValueError):
    pass


def parse_lines(text: str, *, invalid_utf8: bool = False) -> Iterator[Point | LineError]:
    """The points and the malformed lines of a body, in order. A malformed line never stops the others.
    With `invalid_utf8` (see decode_body), lines holding undecodable bytes are refused."""
    lines = text.split("\n")
    count = len(lines)
    index = 0
    offset = 0  # where lines[index] starts in text
    while index < count:
        raw = lines[index]
        start = offset
        index += 1
        offset += len(raw) + 1
        line = raw.strip(_BLANKS)
        if not line or line[0] == "#":
            continue
        number = index
        if invalid_utf8 and _UNDECODABLE.search(line):
            yield LineError(number, "not valid UTF-8")
        elif '"' in line or ("\\" in line and _PLACEHOLDERS.search(line)):
            parsed, end = _parse_escaped(text, start + len(raw) - len(raw.lstrip(_BLANKS)), number)
            while offset <= end and index < count:  # a string value with newlines took the lines up to `end`
                offset += len(lines[index]) + 1
                index += 1
            yield parsed
        elif "\\" in line:
            yield _parse_backslashed(line, number)
        else:
            try:
                yield _parse_plain(line, number)
            except LineSyntaxError as exc:
                yield LineError(number, str(exc))


def _parse_backslashed(line: str, number: int) -> Point | LineError:
    """A line with escapes but no string value (OPC UA node ids in tags, names with spaces): its escape pairs
    are swapped for placeholder characters, it is cut as a plain line, and the names get their characters back.
    The pairs are read left to right like the scanner's, so both read such a line alike (tested)."""
    protected = line
    for pair, placeholder in _PROTECTED_PAIRS:
        protected = protected.replace(pair, placeholder)
    try:
        point = _parse_plain(protected, number)
    except LineSyntaxError:
        return _parse_escaped(line, 0, number)[0]  # the scanner's message names the line as it was sent
    return Point(
        number,
        point.measurement.translate(_RESTORE_MEASUREMENT),
        {key.translate(_RESTORE): value.translate(_RESTORE) for key, value in point.tags.items()},
        [(name.translate(_RESTORE), value) for name, value in point.fields],
        point.timestamp,
    )


def _parse_plain(line: str, number: int) -> Point:
    sections = line.split(" ")
    if len(sections) > 3 or "" in sections:
        sections = [section for section in sections if section]  # runs of spaces between the sections
    if len(sections) == 2:
        key, field_set = sections
        timestamp = None
    elif len(sections) == 3:
        key, field_set, stamp = sections
        timestamp = _timestamp(stamp)
    elif len(sections) == 1:
        raise LineSyntaxError("no field set: a line is 'measurement[,tag=value...] field=value[,...] [timestamp]'")
    else:
        raise LineSyntaxError("unexpected space: escape spaces in names as '\\ '")
    measurement, *tag_pairs = key.split(",")
    if not measurement:
        raise LineSyntaxError("missing measurement")
    tags: dict[str, str] = {}
    for pair in tag_pairs:
        name, _, value = pair.partition("=")
        if not name or not value or "=" in value:
            raise LineSyntaxError(f"invalid tag {pair!r}: expected key=value")
        tags[name] = value
    fields: list[tuple[str, FieldValue]] = []
    for item in field_set.split(","):
        name, _, value = item.partition("=")
        if not name or not value:
            raise LineSyntaxError(f"invalid field {item!r}: expected key=value")
        fields.append((name, field_value(name, value)))
    return Point(number, measurement, tags, fields, timestamp)


def _parse_escaped(text: str, start: int, number: int) -> tuple[Point | LineError, int]:
    """The point (or what is wrong with it) that starts at `start` in the body, and where its line ends: a string
    value may hold newlines, so a point may run over several lines. Every pattern stops at a newline except a
    string's, which stops at its closing quote or after MAX_STRING characters, so a body is scanned in linear
    time whatever quotes it holds."""
    position = start
    try:
        match = _MEASUREMENT.match(text, position)
        if match is None:
            raise LineSyntaxError("missing measurement")
        measurement = match.group()
        if "\\" in measurement:
            measurement = _MEASUREMENT_ESCAPE.sub(r"\1", measurement)
        position = match.end()
        tags: dict[str, str] = {}
        while text.startswith(",", position):
            key = _NAME.match(text, position + 1)
            if key is None or not text.startswith("=", key.end()):
                raise LineSyntaxError("invalid tag: expected key=value")
            value = _NAME.match(text, key.end() + 1)
            if value is None:
                raise LineSyntaxError(f"tag {_unescape_name(key.group())!r} has no value")
            tags[_unescape_name(key.group())] = _unescape_name(value.group())
            position = value.end()
        spaces = _SPACES.match(text, position)
        if spaces is None:
            if position < len(text) and text[position] not in "\r\n":
                raise LineSyntaxError(f"unexpected {text[position]!r} after {text[start:position]!r}: escape it")
            raise LineSyntaxError("no field set: a line is 'measurement[,tag=value...] field=value[,...] [timestamp]'")
        position = spaces.end()
        fields: list[tuple[str, FieldValue]] = []
        while True:
            key = _NAME.match(text, position)
            if key is None or not text.startswith("=", key.end()):
                raise LineSyntaxError("invalid field: expected key=value")
            name = _unescape_name(key.group())
            position = key.end() + 1
            if text.startswith('"', position):
                quoted = _QUOTED.match(text, position, position + MAX_STRING + 2)
                if quoted is None:
                    raise LineSyntaxError(
                        f"field {name!r}: the string has no closing quote or is longer than {MAX_STRING} characters"
                    )
                string = quoted.group(1)
                fields.append((name, _STRING_ESCAPE.sub(r"\1", string) if "\\" in string else string))
                position = quoted.end()
            else:
                bare = _BARE_VALUE.match(text, position)
                if bare is None:
                    raise LineSyntaxError(f"field {name!r} has no value")
                fields.append((name, field_value(name, bare.group())))
                position = bare.end()
            if not text.startswith(",", position):
                break
            position += 1
        end = text.find("\n", position)
        end = len(text) if end < 0 else end
        rest = text[position:end].rstrip(_BLANKS)
        timestamp = None
        if rest:
            if rest[0] != " ":
                raise LineSyntaxError(f"unexpected {rest[0]!r} after the value of field {name!r}")
            timestamp = _timestamp(rest.lstrip(" "))
        return Point(number, measurement, tags, fields, timestamp), end
    except LineSyntaxError as exc:
        end = text.find("\n", position)
        return LineError(number, str(exc)), len(text) if end < 0 else end


def _unescape_name(text: str) -> str:
    return _NAME_ESCAPE.sub(r"\1", text) if "\\" in text else text


def field_value(name: str, raw: str) -> FieldValue:
    """A field's value from its unquoted text: float, integer (i), unsigned (u) or boolean."""
    last = raw[-1]
    if last in _FLOAT_ENDS:
        if "_" not in raw:  # float() takes "1_000"; the protocol does not
            try:
                number = float(raw)
            except ValueError:
                pass
            else:
                if math.isfinite(number):
                    return number
        raise LineSyntaxError(f"field {name!r}: {raw!r} is not a finite number")
    if last == "i" or last == "u":
        digits = raw[:-1]
        try:
            number = int(digits) if "_" not in digits else None
        except ValueError:
            number = None
        if number is None:
            raise LineSyntaxError(f"field {name!r}: {raw!r} is not an integer")
        if last == "i" and not INT64_MIN <= number <= INT64_MAX:
            raise LineSyntaxError(f"field {name!r}: {raw!r} is outside the int64 range")
        if last == "u" and not 0 <= number <= UINT64_MAX:
            raise LineSyntaxError(f"field {name!r}: {raw!r} is outside the uint64 range")
        return number
    value = _BOOLEANS.get(raw)
    if value is None:
        raise LineSyntaxError(f"field {name!r}: invalid value {raw!r} (a string needs double quotes)")
    return value


def _timestamp(stamp: str) -> int:
    digits = stamp[1:] if stamp[0] == "-" else stamp
    if not (digits.isascii() and digits.isdigit()):
        raise LineSyntaxError(f"invalid timestamp {stamp!r}: expected an integer")
    value = int(stamp)
    if not INT64_MIN <= value <= INT64_MAX:
        raise LineSyntaxError(f"timestamp {stamp!r} is outside the int64 range")
    return value


def decode_body(raw: bytes) -> tuple[str, bool]:
    """The body as text, and whether some of it was not UTF-8 (those lines are then refused, the rest read)."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", "surrogateescape"), True

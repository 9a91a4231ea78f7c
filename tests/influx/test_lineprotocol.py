"""The line protocol parser: every value type, escapes, comments, errors per line, and agreement with the official
client's serializer and between the parser's two paths."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from influxdb_client import Point as ClientPoint
from influxdb_client.domain.write_precision import WritePrecision

from apps.influx.lineprotocol import (
    INT64_MAX,
    UINT64_MAX,
    LineError,
    Point,
    _parse_backslashed,
    _parse_escaped,
    _parse_plain,
    decode_body,
    parse_lines,
)


def parse(text: str) -> list:
    return list(parse_lines(text))


def only_point(text: str) -> Point:
    (point,) = parse(text)
    assert isinstance(point, Point), point
    return point


def test_every_field_type_is_read_with_its_type():
    point = only_point('plc,device=d1 f=21.5,i=-42i,u=42u,t=t,T=TRUE,no=false,s="ok",e=-1.5e3 1770912000000000000')
    assert point.measurement == "plc"
    assert point.tags == {"device": "d1"}
    assert point.fields == [
        ("f", 21.5), ("i", -42), ("u", 42), ("t", True), ("T", True), ("no", False), ("s", "ok"), ("e", -1500.0),
    ]  # fmt: skip
    assert [type(value) for _, value in point.fields] == [float, int, int, bool, bool, bool, str, float]
    assert point.timestamp == 1770912000000000000


def test_a_point_without_timestamp_has_none():
    assert only_point("m f=1").timestamp is None


def test_a_number_without_suffix_is_a_float():
    assert only_point("m f=42").fields == [("f", 42.0)]


def test_escaped_commas_spaces_and_equals_signs_are_unescaped():
    point = only_point(r"my\ meas\,x,tag\ key=a\ b\,c\=d field\=key=1")
    assert point.measurement == "my meas,x"
    assert point.tags == {"tag key": "a b,c=d"}
    assert point.fields == [("field=key", 1.0)]


def test_a_backslash_before_another_character_is_kept():
    assert only_point(r"m,path=C:\temp f=1").tags == {"path": r"C:\temp"}


def test_an_equals_sign_needs_no_escape_in_a_measurement_and_its_backslash_stays_as_influxdb_keeps_it():
    assert only_point(r"a=b,t=1 f=1").measurement == "a=b"
    assert only_point(r"a\=b,t=1 f=1").measurement == r"a\=b"
    assert only_point(r'a\=b,t=1 s="x"').measurement == r"a\=b"


def test_string_values_unescape_quotes_and_backslashes_and_keep_commas_and_spaces():
    point = only_point(r'm s="say \"hi\", a\\b = c",f=2')
    assert point.fields == [("s", 'say "hi", a\\b = c'), ("f", 2.0)]


def test_a_string_value_may_span_lines_and_the_next_point_keeps_its_line_number():
    points = parse('m s="first\nsecond",f=1 5\nm f=2')
    assert points == [
        Point(1, "m", {}, [("s", "first\nsecond"), ("f", 1.0)], 5),
        Point(3, "m", {}, [("f", 2.0)], None),
    ]


def test_comments_blank_lines_and_surrounding_blanks_are_skipped_and_lines_keep_their_numbers():
    points = parse("# a comment\n\n   \n  m f=1  \r\n\t# indented comment\nm f=2 7\r\n")
    assert [(point.line, point.fields, point.timestamp) for point in points] == [
        (4, [("f", 1.0)], None),
        (6, [("f", 2.0)], 7),
    ]


def test_runs_of_spaces_between_the_sections_are_accepted():
    assert only_point("m  f=1   5").timestamp == 5


@pytest.mark.parametrize(
    "line, complaint",
    [
        ("m", "no field set"),
        ("m,t=1", "no field set"),
        (",t=1 f=1", "missing measurement"),
        ("m,t= f=1", "invalid tag"),
        ("m,=v f=1", "invalid tag"),
        ("m f=", "invalid field"),
        ("m =1", "invalid field"),
        ("m f=abc", "invalid value 'abc'"),
        ("m f=nan", "invalid value 'nan'"),
        ("m f=inf", "invalid value 'inf'"),
        ("m f=1e999", "not a finite number"),
        ("m f=1_000", "not a finite number"),
        ("m f=1.2.3", "not a finite number"),
        ("m f=12x", "invalid value"),
        ("m f=9223372036854775808i", "outside the int64 range"),
        ("m f=-9223372036854775809i", "outside the int64 range"),
        ("m f=18446744073709551616u", "outside the uint64 range"),
        ("m f=-1u", "outside the uint64 range"),
        ("m f=1.5i", "not an integer"),
        ("m f=1 1.5", "invalid timestamp"),
        ("m f=1 abc", "invalid timestamp"),
        ("m f=1 9223372036854775808", "outside the int64 range"),
        ("m f=1 5 6", "unexpected space"),
        ('m s="unterminated', "no closing quote"),
        ('m s="a"b', "unexpected 'b'"),
        ('m s="a" 1 2', "invalid timestamp"),
        (r"m,a=b\ c=d f=1", "unexpected '='"),
    ],
)
def test_a_malformed_line_is_named_with_the_reason(line, complaint):
    (error,) = parse(line)
    assert isinstance(error, LineError), error
    assert error.line == 1
    assert complaint in error.message


def test_integer_bounds_are_inclusive():
    point = only_point(f"m i={INT64_MAX}i,j=-{INT64_MAX + 1}i,u={UINT64_MAX}u")
    assert point.fields == [("i", INT64_MAX), ("j", -INT64_MAX - 1), ("u", UINT64_MAX)]


def test_a_bad_line_does_not_stop_the_lines_after_it():
    results = parse('m f=1\nm f=oops\nm f=3\nm s="never closed\nm f=5')
    assert [(type(result).__name__, result.line) for result in results] == [
        ("Point", 1), ("LineError", 2), ("Point", 3), ("LineError", 4), ("Point", 5),
    ]  # fmt: skip


def test_a_string_without_closing_quote_costs_one_line_not_the_rest_of_the_body():
    results = parse('m s="open\n' + "m f=1\n" * 1000)
    assert isinstance(results[0], LineError)
    assert len(results) == 1001
    assert all(isinstance(result, Point) for result in results[1:])


def test_bytes_that_are_not_utf8_refuse_only_their_line():
    text, invalid = decode_body(b"m,device=d1 f=1\nm,device=d\xff f=2\nm,device=d3 f=3")
    assert invalid
    results = list(parse_lines(text, invalid_utf8=invalid))
    assert [type(result).__name__ for result in results] == ["Point", "LineError", "Point"]
    assert results[1] == LineError(2, "not valid UTF-8")


# --- Agreement with the official client (influxdb-client's serializer) ---------------------------------------------

# Names as clients produce them, escaped by the client. Left out on purpose: control characters (the mapping
# refuses them anyway; the client writes a newline in a name as the two characters "\n"), backslashes (the client
# does not escape them, so "a\" followed by an escaped comma is ambiguous in InfluxDB itself) and a leading "#"
# (a comment).
names = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\\"), min_size=1, max_size=12)
measurements = names.filter(lambda name: not name.startswith("#"))
field_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),  # newlines, quotes and backslashes included
)


@settings(max_examples=300, deadline=None)
@given(
    measurement=measurements,
    tags=st.dictionaries(names, names, max_size=4),
    fields=st.dictionaries(names, field_values, min_size=1, max_size=5),
    timestamp=st.one_of(st.none(), st.integers(min_value=0, max_value=2**63 - 1)),
)
def test_what_the_official_client_writes_is_read_back_unchanged(measurement, tags, fields, timestamp):
    point = ClientPoint(measurement)
    for key, value in tags.items():
        point.tag(key, value)
    for key, value in fields.items():
        point.field(key, value)
    if timestamp is not None:
        point.time(timestamp, WritePrecision.NS)

    (parsed,) = parse(point.to_line_protocol())

    assert isinstance(parsed, Point), (point.to_line_protocol(), parsed)
    assert parsed.measurement == measurement
    assert parsed.tags == tags
    assert dict(parsed.fields) == fields
    assert parsed.timestamp == timestamp


# Lines without backslashes or quotes, from pieces that are mostly valid and sometimes not.
plain_pieces = st.sampled_from(["m", "cpu", "t", "v", "1", "-2.5", "3i", "4u", "true", "F", "1e3", "nan", "x_y", "é"])
plain_lines = st.lists(st.one_of(plain_pieces, st.sampled_from([",", "=", " ", "  "])), min_size=1, max_size=14).map(
    "".join
)


@settings(max_examples=500, deadline=None)
@given(line=plain_lines)
def test_the_fast_path_reads_a_plain_line_as_the_escape_aware_scanner_does(line):
    line = line.strip(" ")
    if not line or line.startswith("#"):
        return
    try:
        fast = _parse_plain(line, 1)
    except ValueError:
        fast = None
    scanned, _ = _parse_escaped(line, 0, 1)
    if fast is None:
        assert isinstance(scanned, LineError), (line, scanned)
    else:
        assert scanned == fast, line


# Lines with escapes but no quotes: the backslash path swaps the pairs out and cuts the line like a plain one.
backslashed_lines = st.lists(
    st.one_of(plain_pieces, st.sampled_from([",", "=", " ", "\\", "\\,", "\\=", "\\ ", "\\\\", "\\t", "é"])),
    min_size=1,
    max_size=14,
).map("".join)


@settings(max_examples=800, deadline=None)
@given(line=backslashed_lines)
def test_the_backslash_path_reads_a_line_as_the_escape_aware_scanner_does(line):
    line = line.strip(" ")
    if not line or line.startswith("#"):
        return
    scanned, _ = _parse_escaped(line, 0, 1)
    assert _parse_backslashed(line, 1) == scanned, line


def test_opc_ua_node_ids_in_tags_are_unescaped():
    (point,) = parse(r"opcua,device=dc-meter-001,id=ns\=2;s\=Meter\ 1 voltage_dc=750.5 1770912000000000000")
    assert point.tags == {"device": "dc-meter-001", "id": "ns=2;s=Meter 1"}

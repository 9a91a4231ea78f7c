from datetime import UTC, datetime

import pytest

from apps.core.timeparams import parse_time_param


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-02-12T16:00:00Z", datetime(2026, 2, 12, 16, tzinfo=UTC)),
        ("2026-02-12T17:00:00+01:00", datetime(2026, 2, 12, 16, tzinfo=UTC)),
        ("2026-02-12T16:00:00 01:00", datetime(2026, 2, 12, 15, tzinfo=UTC)),  # '+' decoded to a space in a URL
        ("2026-02-12T16:00:00", datetime(2026, 2, 12, 16, tzinfo=UTC)),
        ("20260212", datetime(2026, 2, 12, tzinfo=UTC)),
        ("2026-02-12T20:00:00+20:00", datetime(2026, 2, 12, 0, tzinfo=UTC)),  # beyond what PostgreSQL takes
    ],
)
def test_time_parameters_come_back_in_utc(raw, expected):
    moment = parse_time_param(raw)
    assert moment == expected
    assert moment.utcoffset().total_seconds() == 0


def test_dates_are_local_midnight_in_the_given_zone():
    assert parse_time_param("20260212", tz="Europe/Berlin") == datetime(2026, 2, 11, 23, tzinfo=UTC)


@pytest.mark.parametrize("raw", ["noon", "20261340", "2026-02-30T00:00:00Z", "0001-01-01T00:00:00+01:00"])
def test_bad_time_parameters_raise_value_error(raw):
    with pytest.raises(ValueError):
        parse_time_param(raw)

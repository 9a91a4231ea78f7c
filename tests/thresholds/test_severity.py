"""The SQL severity expression and the Python classifier agree, over a grid of band configurations (every band
end empty or set, ends meeting where the order allows) and values on, just inside and just outside every limit."""

from __future__ import annotations

import itertools
import math

import pytest
from django.db import connection

from apps.thresholds.models import BAND_FIELDS
from apps.thresholds.selectors import EffectiveThreshold
from apps.thresholds.severity import RANKS, severity_label_sql, severity_rank_sql

pytestmark = pytest.mark.django_db

# Band ends in BAND_FIELDS order (critical_low, warning_low, warning_high, critical_high), each ordered as the
# rules allow: apart, critical meeting warning on either side, fractions and large magnitudes.
LIMITS = [
    (0.0, 10.0, 20.0, 30.0),
    (10.0, 10.0, 20.0, 20.0),
    (-5.5, -0.25, 0.125, 1e6),
    (-1e300, -1e-300, 1e-300, 1e300),
]


def configurations() -> list[dict[str, float | None]]:
    """Every limit set of LIMITS with every subset of its ends left empty."""
    result = []
    for limits in LIMITS:
        for present in itertools.product([False, True], repeat=len(BAND_FIELDS)):
            result.append(
                {
                    field: limit if kept else None
                    for field, limit, kept in zip(BAND_FIELDS, limits, present, strict=True)
                }
            )
    return result


def values_around(bands: dict[str, float | None]) -> list[float]:
    """Each set limit, the nearest doubles on both sides of it, points between and beyond the limits, zero and the
    extremes; no NaN (not a reading value)."""
    limits = sorted(limit for limit in bands.values() if limit is not None)
    values = [0.0, -math.inf, math.inf, -1.7e308, 1.7e308]
    for limit in limits:
        values += [limit, math.nextafter(limit, -math.inf), math.nextafter(limit, math.inf), limit - 1, limit + 1]
    values += [(low + high) / 2 for low, high in itertools.pairwise(limits)]
    return values


def classified_in_sql(cases: list[tuple[dict[str, float | None], float]]) -> list[tuple[int, str]]:
    """(rank, label) of each case, computed by the generated expressions in PostgreSQL in one query."""
    rank = severity_rank_sql(value="grid.value", band=lambda field: f"grid.{field}")
    columns = ", ".join("%s::float8[]" for _ in range(len(BAND_FIELDS) + 1))
    sql = (
        f"SELECT grid.n, {rank}, {severity_label_sql(rank)}"
        f" FROM unnest(%s::int[], {columns}) AS grid(n, value, {', '.join(BAND_FIELDS)}) ORDER BY grid.n"
    )
    params = [list(range(len(cases))), [value for _, value in cases]]
    params += [[bands[field] for bands, _ in cases] for field in BAND_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(row_rank, label) for _, row_rank, label in cursor.fetchall()]


def python_classifier(bands: dict[str, float | None]) -> EffectiveThreshold:
    return EffectiveThreshold(threshold_id=1, sensor_id=1, hysteresis=0, min_duration_s=0, **bands)


def test_the_sql_expression_classifies_every_value_as_the_python_classifier_does():
    cases = [(bands, value) for bands in configurations() for value in values_around(bands)]

    in_sql = classified_in_sql(cases)

    disagreements = []
    for (bands, value), (rank, label) in zip(cases, in_sql, strict=True):
        expected = python_classifier(bands).severity_of(value)
        if (label, rank) != (expected, RANKS[expected]):
            disagreements.append((bands, value, expected, label, rank))
    assert not disagreements, disagreements[:10]
    # The grid reaches every level, so agreement is not agreement on "normal" alone.
    assert {label for _, label in in_sql} == {"normal", "warning", "critical"}
    assert len(cases) > 1000


def test_no_threshold_at_all_is_normal():
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {severity_label_sql('NULL::int')}")
        assert cursor.fetchone()[0] == "normal"


def test_the_limits_themselves_are_inside_their_band():
    bands = python_classifier(dict(zip(BAND_FIELDS, LIMITS[0], strict=True)))  # 0, 10, 20, 30

    assert [bands.severity_of(value) for value in (0, 10, 20, 30)] == ["warning", "normal", "normal", "warning"]
    assert [bands.severity_of(value) for value in (-0.001, 30.001)] == ["critical", "critical"]

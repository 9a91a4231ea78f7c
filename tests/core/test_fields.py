"""The query parameters' shared rules (apps/core/fields.py), as a query serializer applies them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rest_framework import serializers

from apps.core.errors import ApplicationError
from apps.core.fields import (
    MAX_ID,
    ChoiceListField,
    FlexibleTimeField,
    IdListField,
    IdOrKeyListField,
    IdsAndKeys,
    PageField,
    PageSizeField,
    QueryTextField,
    parse_ids_and_keys,
)
from apps.core.query import as_parameters, validated
from apps.devices.models import Sensor


class Query(serializers.Serializer):
    sensor = IdOrKeyListField()
    sensor_id = IdListField()
    name = QueryTextField()
    at = FlexibleTimeField()
    status = ChoiceListField(choices=["normal", "stale"])
    page = PageField()
    page_size = PageSizeField(default=10, maximum=100)
    rows = PageSizeField(default=10, maximum=100, capped=True)


def refusal(params: dict) -> dict:
    with pytest.raises(ApplicationError) as refused:
        validated(Query, params)
    assert refused.value.status_code == 400
    return refused.value.errors


@pytest.mark.parametrize(
    ("raw", "ids", "keys"),
    [
        ("env-001/temperature", (), ("env-001/temperature",)),
        ("12", (12,), ()),
        ("12, env-001/humidity ,7", (12, 7), ("env-001/humidity",)),
        ("007", (7,), ()),
        ("12,12,a,a", (12,), ("a",)),
        ("-3", (), ("-3",)),  # not digits only: a key
        ("1.5", (), ("1.5",)),
        ("\u00b2", (), ("\u00b2",)),  # a superscript two is a digit to str.isdigit(), not an id
        (str(MAX_ID), (MAX_ID,), ()),
        (" , ,", (), ()),
    ],
)
def test_digits_only_are_ids_and_anything_else_a_key(raw, ids, keys):
    assert parse_ids_and_keys(raw) == IdsAndKeys(ids=ids, keys=keys)


@pytest.mark.parametrize("raw", [str(MAX_ID + 1), f"a,{10**30}", "1\x002", "key\x1b[31m", "k\ud800"])
def test_ids_beyond_bigint_and_control_characters_are_refused(raw):
    with pytest.raises(ValueError):
        parse_ids_and_keys(raw)


def test_an_ids_only_list_refuses_keys():
    assert parse_ids_and_keys("3,4", keys=False) == IdsAndKeys(ids=(3, 4))
    with pytest.raises(ValueError, match="'x' is not an id"):
        parse_ids_and_keys("3,x", keys=False)


@pytest.mark.django_db
def test_names_select_rows_by_id_or_by_key(world):
    def keys(named: IdsAndKeys) -> set[str]:
        return set(Sensor.objects.filter(named.q(id_field="id", key_field="key")).values_list("key", flat=True))

    temperature = world.sensors["env-001/temperature"].pk

    assert keys(parse_ids_and_keys(f"{temperature},env-002/humidity")) == {"env-001/temperature", "env-002/humidity"}
    assert keys(parse_ids_and_keys(f"{temperature}")) == {"env-001/temperature"}
    assert keys(IdsAndKeys()) == set()


def test_absent_and_blank_parameters_take_the_defaults():
    expected = {
        "sensor": None,
        "sensor_id": None,
        "name": None,
        "at": None,
        "status": None,
        "page": 1,
        "page_size": 10,
        "rows": 10,
    }
    assert validated(Query, {}) == expected
    assert validated(Query, dict.fromkeys(expected, "  ")) == expected
    assert validated(Query, {"sensor": ",", "status": ","})["sensor"] is None


def test_each_bad_parameter_is_named_with_its_message():
    errors = refusal({"sensor": str(2**63), "name": "a\x00b", "at": "noon", "status": "purple,normal", "page": "0"})

    assert set(errors) == {"sensor", "name", "at", "status", "page"}
    assert errors["status"] == ["Unknown: purple. Use any of: normal, stale."]
    assert errors["page"] == ["A positive integer."]


def test_page_sizes_beyond_the_maximum_are_refused_or_capped():
    assert validated(Query, {"page_size": "100"})["page_size"] == 100
    assert validated(Query, {"rows": "5000"})["rows"] == 100
    assert refusal({"page_size": "101"}) == {"page_size": ["At most 100."]}
    assert set(refusal({"rows": "x", "page_size": "1e3"})) == {"rows", "page_size"}


def test_times_are_iso_8601_or_dates_in_utc():
    assert validated(Query, {"at": "2026-02-12T17:00:00+01:00"})["at"] == datetime(2026, 2, 12, 16, tzinfo=UTC)
    assert validated(Query, {"at": "20260212"})["at"] == datetime(2026, 2, 12, tzinfo=UTC)


def test_checked_parameters_say_the_same_when_checked_again():
    query = validated(Query, {"sensor": "a,3", "at": "20260212", "status": "stale", "rows": "20"})

    again = validated(Query, as_parameters(Query, query))

    assert again == query

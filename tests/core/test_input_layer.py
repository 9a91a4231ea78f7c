"""The read APIs' one way in (apps/core/query.py, apps/core/filters.py): the OpenAPI parameters of every
operation are exactly the fields of its query serializer or FilterSet (and of DRF's paginator, search and
ordering), nothing reads the query string outside that layer, and the shared rules hold on every endpoint.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.generators import EndpointEnumerator, SchemaGenerator
from rest_framework.mixins import ListModelMixin
from rest_framework.viewsets import ViewSetMixin

import apps
from tests.core.test_openapi import openapi_document
from tests.factories import API, assert_error_shape

APPS_DIR = Path(apps.__file__).parent
# The modules that may read request.query_params: the query serializers' runner, the page-number paginator and
# the search filter (django-filter reads the FilterSets' parameters itself).
INPUT_LAYER = {"apps/core/query.py", "apps/core/pagination.py", "apps/core/filters.py"}


def _operations():
    """(path as in the schema, method, view instance) of every API operation (the schema's own views aside)."""
    generator = SchemaGenerator()
    for path, _, method, callback in EndpointEnumerator().get_api_endpoints():
        view = generator.create_view(callback, method)
        if type(view).__module__.startswith("drf_spectacular."):
            continue
        yield generator.coerce_path(path, method, view), method.lower(), view


def _is_list(view, method: str) -> bool:
    if isinstance(view, ViewSetMixin):
        return getattr(view, "action", None) == "list"
    return method == "get" and isinstance(view, ListModelMixin)


def input_fields(view, method: str) -> set[str]:
    """The query parameters a view checks: its query serializer's fields; for a list, also its FilterSet's,
    its search and ordering parameters and its paginator's."""
    names: set[str] = set()
    query_serializer = getattr(view, "query_serializer_class", None)
    if query_serializer is not None:
        names |= set(query_serializer().fields)
    if not _is_list(view, method):
        return names
    for backend_class in view.filter_backends:
        backend = backend_class()
        if isinstance(backend, DjangoFilterBackend):
            model = view.get_serializer_class().Meta.model
            filterset = backend.get_filterset_class(view, model.objects.none())
            names |= set(filterset.base_filters) if filterset else set()
        else:
            names |= {parameter["name"] for parameter in backend.get_schema_operation_parameters(view)}
    if view.paginator is not None:
        names |= {parameter["name"] for parameter in view.paginator.get_schema_operation_parameters(view)}
    return names


OPERATIONS = list(_operations())


@pytest.fixture(scope="module")
def document() -> dict:
    return openapi_document()


@pytest.mark.parametrize(("path", "method", "view"), OPERATIONS, ids=[f"{m} {p}" for p, m, _ in OPERATIONS])
def test_the_documented_query_parameters_are_the_fields_the_view_checks(document, path, method, view):
    operation = document["paths"][path][method]
    documented = {parameter["name"] for parameter in operation.get("parameters", []) if parameter["in"] == "query"}

    assert documented == input_fields(view, method)


def test_the_read_endpoints_have_an_input_layer():
    """So the test above compares something: each read endpoint's parameters come from a class of its own."""
    views = {path: view for path, method, view in OPERATIONS if method == "get"}
    for path in ("realtime/", "readings/", "aggregates/", "exports/readings", "exports/aggregates"):
        assert views[f"{API}/{path}"].query_serializer_class is not None, path
    for path in ("alerts/", "sensors/", "devices/", "threshold-mappings/", "anomaly-rules/", "commands/"):
        view = next(view for p, m, view in OPERATIONS if p == f"{API}/{path}" and m == "get")
        assert view.filterset_class is not None, path


def test_nothing_outside_the_input_layer_reads_the_query_string():
    readers = {
        str(path.relative_to(APPS_DIR.parent))
        for path in APPS_DIR.rglob("*.py")
        if re.search(r"\bquery_params\b", path.read_text())
    }

    assert readers <= INPUT_LAYER
    assert "apps/core/query.py" in readers  # the walk sees the modules that do


# --- the shared rules, on every endpoint that has the parameter ---------------------------------------------

IDENTIFIER_PARAMETERS = [
    ("realtime/", "sensor"),
    ("realtime/", "device"),
    ("realtime/", "sensor_type"),
    ("readings/", "sensor"),
    ("readings/", "sensor_id"),
    ("aggregates/", "sensor"),
    ("aggregates/", "sensor_type"),
    ("exports/readings", "sensor"),
    ("exports/aggregates", "sensor_type"),
    ("alerts/", "sensor"),
    ("alerts/", "sensor_id"),
    ("alerts/", "device"),
    ("alerts/", "sensor_type"),
    ("alerts/", "threshold"),
    ("sensors/", "device"),
    ("sensors/", "sensor_type"),
    ("devices/", "has_sensor_type"),
    ("thresholds/", "sensor_type"),
    ("threshold-mappings/", "sensor"),
    ("anomaly-rules/", "sensor"),
    ("anomaly-rules/", "sensor_type"),
    ("commands/", "device"),
    ("maintenance-windows/", "device"),
    ("subscriptions/", "sensor_type"),
]
LOCATION_PARAMETERS = [
    ("realtime/", "location"),
    ("aggregates/", "location"),
    ("alerts/", "location"),
    ("sensors/", "location"),
    ("devices/", "location"),
    ("threshold-mappings/", "location"),
    ("anomaly-rules/", "location"),
    ("maintenance-windows/", "location"),
    ("subscriptions/", "location"),
    ("locations/", "within"),
]
TEXT_PARAMETERS = [
    ("realtime/", "sensor"),
    ("readings/", "sensor"),
    ("aggregates/", "tz"),
    ("alerts/", "device_id"),
    ("sensors/", "key"),
    ("sensors/", "channel"),
    ("sensors/", "device_external_id"),
    ("devices/", "manufacturer"),
    ("sensor-types/", "code"),
    ("thresholds/", "name"),
    ("threshold-mappings/", "sensor_key"),
    ("commands/", "cmd"),
    ("devices/", "search"),
    ("alerts/", "search"),
]
# Where an unknown sensor, type or location is a 400 naming it: the endpoints that compute over what they name.
REFUSE_UNKNOWN = {
    ("realtime/", "location"),
    *(
        (path, parameter)
        for path in ("aggregates/", "exports/readings", "exports/aggregates")
        for parameter in ("sensor", "sensor_type", "location")
    ),
}


def _get(client, path: str, params: dict):
    return client.get(f"{API}/{path}", {"sensor": "env-001/temperature", **params})


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "parameter"), IDENTIFIER_PARAMETERS + LOCATION_PARAMETERS)
@pytest.mark.parametrize("value", [str(2**63), f"1,{2**64}", "9" * 30])
def test_an_id_beyond_bigint_is_a_400_naming_the_parameter(world, admin_api, path, parameter, value):
    response = _get(admin_api, path, {parameter: value})

    assert response.status_code == 400, response.content
    assert list(assert_error_shape(response, parameter)["errors"]) == [parameter]


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "parameter"), IDENTIFIER_PARAMETERS + LOCATION_PARAMETERS)
def test_the_largest_bigint_is_an_id_that_names_nothing(world, admin_api, path, parameter):
    response = _get(admin_api, path, {parameter: str(2**63 - 1)})

    if (path, parameter) in REFUSE_UNKNOWN:
        assert response.status_code == 400, response.content
        assert list(assert_error_shape(response, parameter)["errors"]) == [parameter]
    else:
        assert response.status_code == 200, response.content
        assert response.json()["results"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "parameter"), IDENTIFIER_PARAMETERS + TEXT_PARAMETERS)
@pytest.mark.parametrize("character", ["\x00", "\x01", "\x1f", "\x7f", "\x9b"])
def test_control_characters_are_a_400_naming_the_parameter(world, admin_api, path, parameter, character):
    response = _get(admin_api, path, {parameter: f"env-001{character}x"})

    assert response.status_code == 400, response.content
    assert parameter in assert_error_shape(response, parameter)["errors"]

"""The one error shape, {"detail": str, "errors": dict}, whatever raised the error."""

import pytest
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions

from apps.core.errors import ApplicationError, api_exception_handler
from tests.factories import API, assert_error_shape


def handle(exc: Exception):
    return api_exception_handler(exc, {"view": None, "args": (), "kwargs": {}, "request": None})


def test_application_error_keeps_its_fields_and_status():
    response = handle(ApplicationError("Nope.", errors={"name": ["taken"]}, status_code=409))

    assert response.status_code == 409
    assert response.data == {"detail": "Nope.", "errors": {"name": ["taken"]}}


def test_drf_validation_errors_are_summarised_and_keep_their_fields():
    response = handle(exceptions.ValidationError({"code": ["bad"], "unit": ["worse"]}))

    assert response.status_code == 400
    assert response.data == {"detail": "Invalid input: code, unit.", "errors": {"code": ["bad"], "unit": ["worse"]}}


def test_a_bare_validation_message_becomes_non_field_errors():
    response = handle(exceptions.ValidationError("Something is off."))

    assert response.status_code == 400
    assert response.data["detail"] == "Something is off."
    assert response.data["errors"] == {"non_field_errors": ["Something is off."]}


def test_django_validation_errors_become_400_by_field():
    response = handle(DjangoValidationError({"name": ["Too long."]}))

    assert response.status_code == 400
    assert response.data["errors"] == {"name": ["Too long."]}


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (Http404(), 404),
        (DjangoPermissionDenied(), 403),
        (exceptions.NotAuthenticated(), 401),
        (exceptions.MethodNotAllowed("PUT"), 405),
    ],
)
def test_other_errors_have_a_detail_and_empty_errors(exc, status):
    response = handle(exc)

    assert response.status_code == status
    assert isinstance(response.data["detail"], str) and response.data["detail"]
    assert response.data["errors"] == {}


def test_throttled_answers_say_when_to_retry():
    response = handle(exceptions.Throttled(wait=7))

    assert response.status_code == 429
    assert response.data["retry_after_s"] == 7
    assert response["Retry-After"] == "7"


def test_unknown_exceptions_are_left_to_django():
    assert handle(RuntimeError("bug")) is None


@pytest.mark.django_db
def test_unknown_detail_route_is_404_in_the_error_shape(admin_api):
    response = admin_api.get(f"{API}/devices/987654321/")

    assert response.status_code == 404
    assert_error_shape(response)


@pytest.mark.django_db
def test_method_not_allowed_is_405_in_the_error_shape(admin_api):
    response = admin_api.put(f"{API}/devices/", {}, format="json")

    assert response.status_code == 405
    assert_error_shape(response)


@pytest.mark.django_db
def test_malformed_json_is_400_in_the_error_shape(admin_api):
    response = admin_api.generic("POST", f"{API}/locations/", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert_error_shape(response)

"""OpenAPI generation: every operation also documents the error answers it can give, in the one error shape,
and the query parameters of a view with a query serializer (apps/core/query.py) are that serializer's fields.

Clients (and schema-driven tests) can then rely on the schema for 4xx answers too, instead of meeting
undocumented status codes, and on its parameters being the ones the view checks.
"""

from __future__ import annotations

from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class ErrorSerializer(serializers.Serializer):
    """Every 4xx answer: a readable summary and, for invalid input, the messages by field."""

    detail = serializers.CharField(help_text="What went wrong, in one sentence.")
    errors = serializers.DictField(
        help_text="Messages by field name (`non_field_errors` for the request as a whole); empty when no field "
        "is to blame."
    )
    retry_after_s = serializers.IntegerField(required=False, help_text="Only on 429: seconds to wait.")

    class Meta:
        ref_name = "Error"


class AutoSchema(openapi.AutoSchema):
    def get_override_parameters(self):
        query_serializer = getattr(self.view, "query_serializer_class", None)
        return [*super().get_override_parameters(), *([query_serializer] if query_serializer else [])]

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, description in self._error_responses().items():
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(ErrorSerializer, description=description), code, direction=direction
                )
        return responses

    def _error_responses(self) -> dict[str, str]:
        # Filters validate the query string on every operation of a filtered view (detail routes included).
        codes = {"400": "Invalid input: `errors` names each field with its messages."}
        if not all(isinstance(permission, AllowAny) for permission in self.view.get_permissions()):
            codes["401"] = "No credentials, or unknown ones."
            codes["403"] = "The caller's role, or device key, does not allow this."
        if "{" in self.path or self._is_list_view():
            codes["404"] = "Not found (for a list: a page past the end)."
        if self.method == "DELETE":
            codes["409"] = "Still referenced by other rows; remove or reassign those first."
        if self.view.get_throttles():
            codes["429"] = "Too many requests: retry after the `Retry-After` header's seconds."
        return codes

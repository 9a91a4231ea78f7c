"""The read APIs' way in: a view names its query serializer, and nothing else reads the query string.

    class RealtimeView(QueryMixin, APIView):
        query_serializer_class = RealtimeQuery

        def get(self, request):
            query = self.query  # validated, or a 400 naming every bad parameter

The list endpoints' FilterSets (apps/core/filters.py) are the same layer for viewsets: django-filter reads
the query string for them. The OpenAPI parameters of a view come from the same class (apps/core/schema.py),
so the documentation and the validation cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from apps.core.errors import ApplicationError


def validated(serializer_class: type[serializers.Serializer], data: Mapping) -> dict[str, Any]:
    """`data` checked by `serializer_class`: its validated data, or an ApplicationError (a 400) naming each bad
    parameter, with their messages as the summary."""
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        errors = {name: list(messages) for name, messages in serializer.errors.items()}
        summary = " ".join(
            f"{name}: {messages[0]}" if name != "non_field_errors" else str(messages[0])
            for name, messages in errors.items()
        )
        raise ApplicationError(summary, errors=errors)
    return serializer.validated_data


class QueryMixin:
    """`self.query`: the request's query string checked by `query_serializer_class`, once per request."""

    query_serializer_class: type[serializers.Serializer] | None = None

    @property
    def query(self) -> dict[str, Any]:
        if not hasattr(self, "_query"):
            self._query = validated(self.query_serializer_class, self.request.query_params)
        return self._query


def as_parameters(serializer_class: type[serializers.Serializer], query: Mapping[str, Any]) -> dict[str, Any]:
    """Validated data back as the parameters that say the same (None left out), to be kept and checked again
    later (an export job's)."""
    representation = serializer_class().to_representation(query)
    return {name: value for name, value in representation.items() if value is not None}

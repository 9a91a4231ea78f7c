"""The query parameters' rules (apps/core/fields.py) as django-filter filters, for the list endpoints' FilterSets.

Every FilterSet of the API derives from `FilterSet` here, so its text filters refuse control characters, and
names sensors, devices and sensor types with `IdOrKeyFilter`: keys (external ids, codes) or ids, comma-separated
and mixed at will, with the same rows either way. The filters' OpenAPI types come from drf-spectacular's
django-filter support: text filters are CharFilters, id filters integers.
"""

from __future__ import annotations

import django_filters
from django import forms
from django.db import models
from django_filters import rest_framework
from django_filters.rest_framework.filterset import FILTER_FOR_DBFIELD_DEFAULTS
from drf_spectacular.utils import extend_schema_field
from rest_framework import filters, serializers

from apps.core.fields import (
    DEVICE_HELP,
    MAX_ID,
    SENSOR_HELP,
    SENSOR_TYPE_HELP,
    IdsAndKeys,
    parse_ids_and_keys,
    text_error,
)
from apps.core.timeparams import parse_time_param


class TextFormField(forms.CharField):
    def validate(self, value):
        super().validate(value)
        if value and (error := text_error(value)):
            raise forms.ValidationError(error)


class IdsAndKeysFormField(forms.CharField):
    def __init__(self, *args, keys: bool = True, **kwargs):
        self.keys = keys
        super().__init__(*args, **kwargs)

    def to_python(self, value) -> IdsAndKeys | None:
        text = super().to_python(value)
        if not text:
            return None
        try:
            return parse_ids_and_keys(text, keys=self.keys) or None
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class FlexibleTimeFormField(forms.CharField):
    def to_python(self, value):
        text = super().to_python(value)
        if not text:
            return None
        try:
            return parse_time_param(text)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class TextFilter(django_filters.CharFilter):
    """Exact text, without control characters."""

    field_class = TextFormField


class IdOrKeyFilter(django_filters.CharFilter):
    """Rows whose `id_field` is among the ids or whose `key_field` among the keys of a comma-separated value."""

    field_class = IdsAndKeysFormField

    def __init__(self, *, id_field: str, key_field: str | None, **kwargs):
        self.id_field = id_field
        self.key_field = key_field
        kwargs.setdefault("field_name", id_field)
        if key_field is None:
            kwargs["keys"] = False
            kwargs.setdefault("help_text", "Ids, comma-separated.")
        super().__init__(**kwargs)

    def filter(self, qs, value: IdsAndKeys | None):
        if not value:
            return qs
        queryset = qs.filter(value.q(id_field=self.id_field, key_field=self.key_field or self.id_field))
        return queryset.distinct() if self.distinct else queryset


def sensor_filter(path: str = "sensor", **kwargs) -> IdOrKeyFilter:
    """Rows of the sensors named by key or id; `path` leads from the rows to their sensor."""
    return IdOrKeyFilter(id_field=f"{path}_id", key_field=f"{path}__key", help_text=SENSOR_HELP, **kwargs)


def device_filter(path: str = "device", **kwargs) -> IdOrKeyFilter:
    """Rows of the devices named by external id or id."""
    return IdOrKeyFilter(id_field=f"{path}_id", key_field=f"{path}__device_id", help_text=DEVICE_HELP, **kwargs)


def sensor_type_filter(path: str = "sensor_type", **kwargs) -> IdOrKeyFilter:
    """Rows of the sensor types named by code or id."""
    return IdOrKeyFilter(id_field=f"{path}_id", key_field=f"{path}__code", help_text=SENSOR_TYPE_HELP, **kwargs)


class IdListFilter(IdOrKeyFilter):
    """Rows whose `field_name` is among a comma-separated list of ids."""

    def __init__(self, *, field_name: str, **kwargs):
        super().__init__(id_field=field_name, key_field=None, **kwargs)


class IdFilter(django_filters.NumberFilter):
    """One id, below 2**63 (a 400 naming the parameter beyond it)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)
        # An integer in the schema, with this filter's own description (a class-wide type would drop it).
        schema = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
        extend_schema_field({**schema, "description": kwargs.get("help_text", "An id.")})(self)


class TimeFilter(django_filters.CharFilter):
    """ISO 8601 with offset (UTC without one) or YYYYMMDD, compared in UTC."""

    field_class = FlexibleTimeFormField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("help_text", "ISO 8601 with offset, or YYYYMMDD (midnight UTC).")
        super().__init__(*args, **kwargs)


class FilterSet(rest_framework.FilterSet):
    """django-filter's FilterSet for DRF, whose text fields named in Meta.fields filter through TextFilter."""

    FILTER_DEFAULTS = {
        **FILTER_FOR_DBFIELD_DEFAULTS,
        models.CharField: {"filter_class": TextFilter},
        models.TextField: {"filter_class": TextFilter},
        models.SlugField: {"filter_class": TextFilter},
    }


class FilterBackend(rest_framework.DjangoFilterBackend):
    """DjangoFilterBackend whose FilterSets made from a view's `filterset_fields` derive from FilterSet above."""

    filterset_base = FilterSet


class SearchFilter(filters.SearchFilter):
    """DRF's search, whose term refuses control characters like every text parameter, naming `search`."""

    def get_search_terms(self, request):
        if error := text_error(request.query_params.get(self.search_param, "")):
            raise serializers.ValidationError({self.search_param: [error]})
        return super().get_search_terms(request)

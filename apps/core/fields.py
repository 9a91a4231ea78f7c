"""The query parameters' rules, one definition each, as DRF serializer fields for the read APIs' query serializers.

- text (`QueryTextField`): no control characters (apps/core/text.py), else a 400 naming the parameter;
- identifiers (`IdOrKeyListField`): comma-separated; a value of digits only is an id (below 2**63, the
  largest bigint, else a 400 naming the parameter), any other value a key or code. So `sensor=` takes keys,
  ids or both mixed and answers the same for either way of naming a sensor;
- ids only (`IdListField`, `IdField`), the same bound;
- times (`FlexibleTimeField`): ISO 8601 with an offset (UTC when it has none) or a YYYYMMDD date
  (apps/core/timeparams.py);
- pages (`PageField`, `PageSizeField`): positive integers (apps/core/pagination.py's rule);
- a comma-separated list of choices (`ChoiceListField`).

An empty parameter (`?sensor=`) counts as absent, as django-filter has it for the list endpoints' filters;
apps/core/filters.py gives the same rules to those filters. apps/core/query.py runs a view's query
serializer over the request's query string.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from apps.core.pagination import positive_int_error
from apps.core.text import CONTROL_MESSAGE, has_control
from apps.core.timeparams import parse_time_param

# Ids are bigints: a larger number cannot name a row, and PostgreSQL would refuse to compare with it.
MAX_ID = 2**63 - 1
# How the API names what it filters by, in every parameter's help text.
_ID_OR_KEY = "comma-separated, mixed at will; a value of digits only is an id (the same rows either way)."
SENSOR_HELP = "Sensor keys or ids, " + _ID_OR_KEY
DEVICE_HELP = "Device external ids (`device_id`) or ids, " + _ID_OR_KEY
SENSOR_TYPE_HELP = "Sensor type codes or ids, " + _ID_OR_KEY


@dataclass(frozen=True)
class IdsAndKeys:
    """The values of an identifier parameter: the numeric ones as ids, the others as keys (or codes)."""

    ids: tuple[int, ...] = ()
    keys: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.ids or self.keys)

    def q(self, *, id_field: str, key_field: str) -> Q:
        """Rows named by either: `id_field` among the ids or `key_field` among the keys."""
        condition = Q(pk__in=[])  # matches nothing: the OR below adds what is named
        if self.ids:
            condition |= Q(**{f"{id_field}__in": self.ids})
        if self.keys:
            condition |= Q(**{f"{key_field}__in": self.keys})
        return condition

    def names(self) -> list[int | str]:
        return [*self.ids, *self.keys]


def split_values(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def text_error(raw: str) -> str | None:
    return CONTROL_MESSAGE if not raw.isprintable() and has_control(raw) else None


def as_id(value: str) -> int | None:
    """The id a value names (digits only), or None for a key; ValueError for a number beyond bigint."""
    if not (value.isascii() and value.isdigit()):
        return None
    number = int(value)
    if number > MAX_ID:
        raise ValueError(f"{value} is not an id: ids are below 2**63.")
    return number


def parse_ids_and_keys(raw: str, *, keys: bool = True) -> IdsAndKeys:
    """A comma-separated parameter as ids and keys; ValueError with a message for the API (control characters,
    an id beyond bigint, or, with `keys=False`, a value that is not an id)."""
    if error := text_error(raw):
        raise ValueError(error)
    ids: list[int] = []
    names: list[str] = []
    for value in split_values(raw):
        number = as_id(value)
        if number is not None:
            ids.append(number)
        elif keys:
            names.append(value)
        else:
            raise ValueError(f"'{value}' is not an id: give ids of digits only, comma-separated.")
    return IdsAndKeys(ids=tuple(dict.fromkeys(ids)), keys=tuple(dict.fromkeys(names)))


class _QueryField:
    """Blank counts as absent; the default (None unless given) stands in for an absent parameter."""

    def __init__(self, **kwargs):
        kwargs.setdefault("default", None)
        super().__init__(**kwargs)

    def get_value(self, dictionary):
        value = super().get_value(dictionary)
        return empty if isinstance(value, str) and not value.strip() else value


@extend_schema_field(OpenApiTypes.STR)
class QueryTextField(_QueryField, serializers.CharField):
    """Text without control characters (a 400 naming the parameter)."""

    def to_internal_value(self, data):
        text = super().to_internal_value(data)
        if error := text_error(text):
            raise serializers.ValidationError(error)
        return text


@extend_schema_field(OpenApiTypes.STR)
class IdOrKeyListField(_QueryField, serializers.Field):
    """Comma-separated ids and keys (codes, external ids): an IdsAndKeys."""

    keys = True

    def to_internal_value(self, data):
        try:
            values = parse_ids_and_keys(str(data), keys=self.keys)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return values if values else self.get_default()

    def to_representation(self, value):
        return ",".join(str(name) for name in value.names())


class IdListField(IdOrKeyListField):
    """Comma-separated ids: an IdsAndKeys without keys."""

    keys = False


class IntegerQueryField(_QueryField, serializers.IntegerField):
    """An integer (between `min_value` and `max_value` when given)."""


class IdField(_QueryField, serializers.IntegerField):
    """One id, below 2**63."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)


@extend_schema_field(OpenApiTypes.STR)
class FlexibleTimeField(_QueryField, serializers.Field):
    """ISO 8601 (with offset; UTC without one) or YYYYMMDD (midnight UTC): an aware datetime in UTC."""

    def to_internal_value(self, data) -> datetime:
        try:
            return parse_time_param(str(data))
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def to_representation(self, value):
        return value.isoformat()


@extend_schema_field(OpenApiTypes.STR)
class ChoiceListField(_QueryField, serializers.Field):
    """Comma-separated values out of `choices`, in the order given, without repeats."""

    def __init__(self, *, choices: Iterable[str], **kwargs):
        self.choices = list(choices)
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> tuple[str, ...]:
        values = tuple(dict.fromkeys(split_values(str(data))))
        unknown = [value for value in values if value not in self.choices]
        if unknown:
            raise serializers.ValidationError(
                f"Unknown: {', '.join(unknown[:20])}. Use any of: {', '.join(self.choices)}."
            )
        return values or self.get_default()

    def to_representation(self, value):
        return ",".join(value)


class ChoiceField(_QueryField, serializers.ChoiceField):
    """One of `choices`; the error names the parameter and the choices."""

    def to_internal_value(self, data):
        if str(data) not in self.choice_strings_to_values:
            raise serializers.ValidationError(
                f"Unknown {self.field_name} '{data}'; use one of {', '.join(self.choice_strings_to_values)}."
            )
        return super().to_internal_value(data)


class _PositiveIntField(_QueryField, serializers.Field):
    def to_internal_value(self, data) -> int:
        number, error = positive_int_error(data)
        if error:
            raise serializers.ValidationError(error)
        return number

    def to_representation(self, value: int) -> int:
        return value


@extend_schema_field(OpenApiTypes.INT)
class PageField(_PositiveIntField):
    """The page number, from 1."""

    def __init__(self, **kwargs):
        kwargs.setdefault("default", 1)
        kwargs.setdefault("help_text", "Page number, from 1.")
        super().__init__(**kwargs)


@extend_schema_field(OpenApiTypes.INT)
class PageSizeField(_PositiveIntField):
    """Rows per page: a positive integer up to `maximum`; beyond it a 400, or with `capped` the maximum."""

    def __init__(self, *, default: int, maximum: int, capped: bool = False, **kwargs):
        self.maximum = maximum
        self.capped = capped
        beyond = f"larger sizes get {maximum}" if capped else f"at most {maximum}"
        kwargs.setdefault("help_text", f"Rows per page: default {default}, {beyond}.")
        super().__init__(default=default, **kwargs)

    def to_internal_value(self, data) -> int:
        size = super().to_internal_value(data)
        if size > self.maximum:
            if self.capped:
                return self.maximum
            raise serializers.ValidationError(f"At most {self.maximum}.")
        return size

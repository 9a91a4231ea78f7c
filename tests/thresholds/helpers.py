"""Submitting admin pages as staff would: the page as rendered, with some fields changed."""

from __future__ import annotations

from typing import Any

from django import forms
from django.test import Client
from django.urls import reverse


def admin_url(model_name: str, pk: int | None = None, *, app: str = "thresholds") -> str:
    if pk is None:
        return reverse(f"admin:{app}_{model_name}_add")
    return reverse(f"admin:{app}_{model_name}_change", args=[pk])


def _as_post(form: forms.BaseForm) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for bound in form:
        value = bound.value()
        if isinstance(bound.field, forms.BooleanField):
            if value:
                data[bound.html_name] = "on"
        else:
            data[bound.html_name] = "" if value is None else value
    return data


def page_data(response, *, add_inline: str | None = None) -> dict[str, Any]:
    """The POST data of a rendered admin add or change page: its form, and each inline's forms with the
    management form. `add_inline` (an inline's prefix) adds a row to that inline as "Add another" does, with
    the new row's initial values."""
    assert response.status_code == 200, response.content[:2000]
    data = _as_post(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        data.update(_as_post(formset.management_form))
        for form in formset.forms:
            data.update(_as_post(form))
        if formset.prefix == add_inline:
            index = len(formset.forms)
            new_row = _as_post(formset.empty_form)
            data.update({name.replace("__prefix__", str(index)): value for name, value in new_row.items()})
            data[f"{add_inline}-TOTAL_FORMS"] = index + 1
    return data


def submit(client: Client, url: str, changes: dict[str, Any], *, add_inline: str | None = None):
    """GET the page at `url`, apply `changes` (field names of the main form, or `prefix-N-field` for inline
    rows; None empties a field, True and False tick and untick a box), POST it. With `add_inline`, a new row of
    that inline comes first (see page_data)."""
    data = page_data(client.get(url), add_inline=add_inline)
    for field, value in changes.items():
        if value is False:
            data.pop(field, None)
        elif value is True:
            data[field] = "on"
        else:
            data[field] = "" if value is None else value
    return client.post(url, data)


def admin_errors(response) -> dict[str, list[str]]:
    """Field errors of a refused admin page, from its form and its inline rows (keyed `prefix-N-field`)."""
    assert response.status_code == 200, f"expected the page again with errors, got {response.status_code}"
    errors = {field: list(messages) for field, messages in response.context["adminform"].form.errors.items()}
    for inline in response.context["inline_admin_formsets"]:
        for form in inline.formset.forms:
            for field, messages in form.errors.items():
                errors[f"{form.prefix}-{field}"] = list(messages)
    assert errors, "the page came back without errors"
    return errors

"""Every registered admin page renders for a superuser, whatever models are registered when the suite runs."""

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.test import RequestFactory
from django.urls import reverse

pytestmark = pytest.mark.django_db

REGISTERED = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)
IDS = [model._meta.label for model, _ in REGISTERED]


def admin_url(model, page: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{page}", args=args)


def can_add(model_admin, user) -> bool:
    request = RequestFactory().get("/admin/")
    request.user = user
    return model_admin.has_add_permission(request)


@pytest.mark.parametrize(("model", "model_admin"), REGISTERED, ids=IDS)
def test_changelist_renders(world, admin_client, model, model_admin):
    response = admin_client.get(admin_url(model, "changelist"))

    assert response.status_code == 200, response.content[:2000]


@pytest.mark.parametrize(("model", "model_admin"), REGISTERED, ids=IDS)
def test_changelist_search_renders(world, admin_client, model, model_admin):
    if not model_admin.search_fields:
        pytest.skip("no search fields")

    response = admin_client.get(admin_url(model, "changelist"), {"q": "a"})

    assert response.status_code == 200, response.content[:2000]


@pytest.mark.parametrize(("model", "model_admin"), REGISTERED, ids=IDS)
def test_add_page_renders(world, admin_client, admin_user, model, model_admin):
    response = admin_client.get(admin_url(model, "add"))

    if can_add(model_admin, admin_user):
        assert response.status_code == 200, response.content[:2000]
    else:
        assert response.status_code == 403


@pytest.mark.parametrize(("model", "model_admin"), REGISTERED, ids=IDS)
def test_change_page_of_an_existing_row_renders(world, admin_client, model, model_admin):
    instance = model._default_manager.first()
    if instance is None:
        pytest.skip("the test world has no row of this model")

    response = admin_client.get(admin_url(model, "change", quote(instance.pk)))

    assert response.status_code == 200, response.content[:2000]

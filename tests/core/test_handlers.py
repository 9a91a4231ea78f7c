"""Unknown API URLs and crashes answer in the API's error shape; other paths keep Django's pages."""

from __future__ import annotations

import json

import pytest
from django.test import Client, RequestFactory

from apps.core.handlers import server_error

pytestmark = pytest.mark.django_db


def test_an_unknown_api_url_is_a_json_404(admin_api):
    response = admin_api.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["detail"].startswith("No endpoint at /api/v1/no-such-thing/")
    assert response.json()["errors"] == {}


def test_other_unknown_urls_keep_the_html_page():
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_crash_under_the_api_is_a_json_500():
    response = server_error(RequestFactory().get("/api/v1/devices/"))
    assert response.status_code == 500
    assert set(json.loads(response.content)) == {"detail", "errors"}

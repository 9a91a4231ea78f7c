"""Fixtures shared by the whole suite: the test world, API clients per role, and a real Celery worker.

Tests that need the worker to see their rows must commit them: mark them
`@pytest.mark.django_db(transaction=True)`.
"""

from __future__ import annotations

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.accounts.roles import Role
from tests import factories
from tests.factories import World
from tests.worker import CeleryWorker, database_url
from tests.worker import wait_for as _wait_for

PRINCIPALS = ("anonymous", "viewer", "operator", "admin", "device")


@pytest.fixture
def world(db) -> World:
    return factories.build_world()


@pytest.fixture
def anonymous_api() -> APIClient:
    return APIClient()


@pytest.fixture
def viewer_api(db) -> APIClient:
    _, token = factories.make_user("viewer", Role.VIEWER)
    return factories.token_client(token)


@pytest.fixture
def operator_api(db) -> APIClient:
    _, token = factories.make_user("operator", Role.OPERATOR)
    return factories.token_client(token)


@pytest.fixture
def admin_api(db) -> APIClient:
    _, token = factories.make_user("admin", Role.ADMIN)
    return factories.token_client(token)


@pytest.fixture
def device_api(world: World) -> APIClient:
    """Authenticated with the ingest key of the world's env-001."""
    return factories.device_client(world.device_keys["env-001"])


@pytest.fixture
def api_as(request):
    """`api_as("viewer")`: the client of one of PRINCIPALS, for tests driven by a table of roles."""

    def client_for(principal: str) -> APIClient:
        assert principal in PRINCIPALS, principal
        return request.getfixturevalue(f"{principal}_api")

    return client_for


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, tmp_path_factory) -> CeleryWorker:
    """A real worker consuming ingest, alerts and default from the test Redis database, connected to the test
    database. Its output is in `celery_worker.log_path`."""
    with django_db_blocker.unblock():
        url = database_url(connection.settings_dict)
    log_path = tmp_path_factory.mktemp("celery-worker") / "worker.log"
    worker = CeleryWorker.start(database_url=url, log_path=log_path)
    yield worker
    worker.stop()


@pytest.fixture
def wait_for():
    return _wait_for

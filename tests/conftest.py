"""Fixtures shared by the whole suite: the test world, API clients per role, and a real Celery worker.

Tests that use the worker (`celery_worker`) run transactionally, so the worker sees their rows; mark them
`@pytest.mark.django_db(transaction=True)` to say so.
"""

from __future__ import annotations

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.accounts.roles import Role
from apps.ingest.partitions import partitions_drop, partitions_forget, partitions_list
from tests import factories, flush
from tests.factories import World
from tests.mqtt.broker import ProjectBroker, session_broker
from tests.worker import CeleryWorker, database_url
from tests.worker import wait_for as _wait_for

flush.install()

PRINCIPALS = ("anonymous", "ingest", "viewer", "operator", "admin", "device")


@pytest.fixture
def world(db) -> World:
    return factories.build_world()


@pytest.fixture
def anonymous_api() -> APIClient:
    return APIClient()


@pytest.fixture
def ingest_api(db) -> APIClient:
    _, token = factories.make_user("gateway", Role.INGEST)
    return factories.token_client(token)


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
def mqtt_broker(django_db_setup, django_db_blocker, tmp_path_factory) -> ProjectBroker:
    """The session's MQTT broker, with the project's configuration (tests/mqtt/broker.py)."""
    with session_broker(django_db_blocker, tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory, mqtt_broker) -> CeleryWorker:
    """One real worker for the session, consuming ingest, alerts and default from the test Redis database and
    connected to the test database and the session's MQTT broker. Its output is in `log_path`. Tests use
    `celery_worker`."""
    with django_db_blocker.unblock():
        url = database_url(connection.settings_dict)
    log_path = tmp_path_factory.mktemp("celery-worker") / "worker.log"
    worker = CeleryWorker.start(database_url=url, log_path=log_path)
    yield worker
    worker.stop()


@pytest.fixture
def celery_worker(celery_worker_process: CeleryWorker, transactional_db) -> CeleryWorker:
    """The session's worker, for a test whose rows it must see: the test is made transactional, and after it
    the fixture waits until the worker has nothing queued or running, so no task of this test runs into the
    flush of its tables or into the next test. It waits before the test too, for tasks queued by tests that
    did not wait (a test without the fixture may still send one)."""
    celery_worker_process.wait_until_idle()
    yield celery_worker_process
    celery_worker_process.wait_until_idle()


@pytest.fixture
def wait_for():
    return _wait_for


@pytest.fixture
def fresh_partitions(db):
    """No readings partitions at the start, and this process's knowledge of them forgotten before and after.
    In an ordinary test the drops are undone with its transaction, bringing back what earlier (committed)
    tests left."""
    partitions_drop([partition.name for partition in partitions_list()])
    partitions_forget()
    yield
    partitions_forget()

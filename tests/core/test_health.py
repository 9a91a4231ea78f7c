import socket

import pytest
from django.test import override_settings


def closed_port() -> int:
    """A local port nobody listens on: bound once to learn a free number, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_liveness_needs_no_authentication(client):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_liveness_only_answers_get(client):
    assert client.post("/health").status_code == 405


@pytest.mark.worker
@pytest.mark.django_db
def test_readiness_is_ok_when_database_redis_and_a_worker_answer(client, celery_worker):
    # The worker ping collects answers for the whole timeout; a local worker answers in milliseconds.
    with override_settings(HEALTH_CHECK_TIMEOUT_S=0.5):
        response = client.get("/health/ready")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["failed"] == []
    assert set(body["checks"]) == {"database", "redis", "workers"}
    assert all(check["status"] == "ok" for check in body["checks"].values())


@pytest.mark.django_db
def test_readiness_is_503_naming_redis_when_redis_is_unreachable(client):
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0", HEALTH_CHECK_TIMEOUT_S=0.5):
        response = client.get("/health/ready")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "redis" in body["failed"]
    assert body["checks"]["redis"]["status"] == "error"
    assert body["checks"]["database"]["status"] == "ok"
    # The worker ping goes through the broker, so it is reported as skipped rather than waited for.
    assert body["checks"]["workers"]["status"] == "error"


@pytest.mark.django_db
def test_readiness_names_the_failed_dependency_to_anyone_but_its_error_only_to_staff(client, admin_user):
    unreachable = f"redis://127.0.0.1:{closed_port()}/0"
    with override_settings(REDIS_URL=unreachable, HEALTH_CHECK_TIMEOUT_S=0.5):
        anonymous = client.get("/health/ready").json()
        client.force_login(admin_user)
        staff = client.get("/health/ready").json()

    assert anonymous["failed"] == staff["failed"] == ["redis", "workers"]
    assert anonymous["checks"]["redis"] == {"status": "error", "ms": anonymous["checks"]["redis"]["ms"]}
    assert not any("error" in check or "detail" in check for check in anonymous["checks"].values())
    assert "Connection" in staff["checks"]["redis"]["error"]

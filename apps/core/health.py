"""Liveness and readiness endpoints: unauthenticated, JSON, 503 naming what failed.

Readiness names each failed dependency to anyone (orchestrators and load balancers call it without
credentials), but the error text and details (host names, addresses, driver messages) only to staff signed
in to the admin; everyone else reads `status` per check.
"""

from __future__ import annotations

import time

import redis
from celery import current_app
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def liveness(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    timeout = settings.HEALTH_CHECK_TIMEOUT_S
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()


def _check_workers() -> str:
    # One answer is enough to be ready; without a limit the broadcast waits out the whole timeout.
    replies = current_app.control.ping(timeout=settings.HEALTH_CHECK_TIMEOUT_S, limit=1)
    if not replies:
        raise RuntimeError("no Celery worker answered a ping")
    return f"{next(iter(replies[0]))} answered"


def _warnings() -> list[str]:
    """Settings that work but leave something open on purpose: said, not failed."""
    if settings.MQTT_DEVICE_AUTH == "broker" and settings.MQTT_INSECURE_BROKER:
        return [
            "MQTT_INSECURE_BROKER=true: the bridge trusts topics without checking that the broker refuses anonymous clients"
        ]
    return []


@require_GET
def readiness(request: HttpRequest) -> JsonResponse:
    checks: dict[str, dict] = {}
    for name, check in (("database", _check_database), ("redis", _check_redis), ("workers", _check_workers)):
        if name == "workers" and checks["redis"]["status"] != "ok":
            # The ping goes through the broker; without Redis it would only wait for its own connect retries.
            checks[name] = {"status": "error", "error": "skipped: the broker (Redis) is unreachable"}
            continue
        started = time.monotonic()
        try:
            detail = check()
        except Exception as exc:  # any failure of a dependency is a readiness failure, reported by name
            checks[name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        else:
            checks[name] = {"status": "ok", **({"detail": detail} if detail else {})}
        checks[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
    failed = [name for name, result in checks.items() if result["status"] != "ok"]
    if not request.user.is_staff:
        for result in checks.values():
            result.pop("error", None)
            result.pop("detail", None)
    body = {"status": "ok" if not failed else "unavailable", "failed": failed, "checks": checks}
    warnings = _warnings()
    if warnings:
        body["warnings"] = warnings
    return JsonResponse(body, status=503 if failed else 200)

"""Production settings: a weak SECRET_KEY stops `manage.py check` when DEBUG is off, the settings docker/compose.yml
ships pass `check --deploy` without a warning, and HTTPS redirects spare the health checks."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client, override_settings

from apps.core.checks import secret_key_problem

ROOT = Path(__file__).resolve().parents[2]
GOOD_KEY = secrets.token_urlsafe(50)
INTERPOLATION = re.compile(r"\$\{(\w+)(?::-([^}]*)|:\?[^}]*)?\}")


@pytest.mark.parametrize(
    "key",
    [
        "x",
        "changeme",
        "test-only-secret-key",
        "insecure-development-key-change-me",
        "a-long-random-string",
        "django-insecure-" + secrets.token_urlsafe(40),
        "a-long-random-string-" + secrets.token_urlsafe(40),
        "ab" * 30,
    ],
)
def test_weak_or_placeholder_keys_are_named(key):
    assert secret_key_problem(key) is not None


def test_a_long_random_key_passes():
    assert secret_key_problem(GOOD_KEY) is None


@pytest.mark.parametrize("key", ["x", "changeme", "a-long-random-string"])
def test_check_fails_with_a_weak_key_when_debug_is_off(key):
    with override_settings(DEBUG=False, SECRET_KEY=key), pytest.raises(SystemCheckError, match="telemetry.E001"):
        call_command("check")


def test_check_passes_a_weak_key_in_development():
    with override_settings(DEBUG=True, SECRET_KEY="insecure-development-key-change-me"):
        call_command("check")


def compose_environment(supplied: dict[str, str]) -> dict[str, str]:
    """The backend's environment in docker/compose.yml, with `${NAME:-default}` at its default and the
    variables compose requires (`${NAME:?...}`) taken from `supplied`."""
    compose = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())
    environment = compose["x-backend"]["environment"]

    def resolve(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        return supplied[name] if name in supplied else (default or "")

    return {name: INTERPOLATION.sub(resolve, str(value)) for name, value in environment.items()}


def manage(*args: str, environment: dict[str, str]) -> subprocess.CompletedProcess:
    """A management command in a fresh process, with settings read from `environment` alone."""
    base = {key: value for key, value in os.environ.items() if key in {"PATH", "HOME", "LANG", "PYTHONPATH"}}
    env = {**base, "DJANGO_SETTINGS_MODULE": "telemetry_project.settings", **environment}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_compose_files_settings_pass_check_deploy_without_a_warning():
    environment = compose_environment({"SECRET_KEY": GOOD_KEY, "POSTGRES_PASSWORD": "not-used-here"})
    assert environment["SECURE_SSL_REDIRECT"] == "true" and environment["SESSION_COOKIE_SECURE"] == "true"

    result = manage("check", "--deploy", "--fail-level", "WARNING", environment=environment)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_compose_files_settings_with_the_example_key_fail_check():
    environment = compose_environment({"SECRET_KEY": "a-long-random-string", "POSTGRES_PASSWORD": "not-used-here"})

    result = manage("check", environment=environment)

    assert result.returncode != 0
    assert "telemetry.E001" in result.stderr


def test_development_settings_pass_check():
    result = manage("check", environment={"DEBUG": "true"})

    assert result.returncode == 0, result.stdout + result.stderr


HTTPS = {
    "SECURE_SSL_REDIRECT": True,
    "SECURE_HSTS_SECONDS": 31536000,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
    "SECURE_HSTS_PRELOAD": True,
    "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
}


@pytest.mark.django_db
def test_plain_http_is_redirected_except_for_health_checks_and_metrics():
    with override_settings(**HTTPS):
        client = Client()  # its middleware is built on the first request, under these settings
        api = client.get("/api/v1/locations/")
        health = client.get("/health")
        metrics = client.get("/metrics")

    assert (api.status_code, api["Location"]) == (301, "https://testserver/api/v1/locations/")
    assert health.status_code == 200
    assert metrics.status_code == 200


@pytest.mark.django_db
def test_https_through_the_proxy_gets_hsts_and_no_redirect():
    with override_settings(**HTTPS):
        response = Client().get("/health", HTTP_X_FORWARDED_PROTO="https")

    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"

"""Settings for the test suite: the real settings with test-only environment defaults."""

import os
from pathlib import Path

# Long enough for the deployment checks (apps/core/checks.py), which hold whenever DEBUG is off.
os.environ.setdefault("SECRET_KEY", "tests-only-9fK2pQ7vX4mN8rT1wZ6yB3cH5jL0dG2sA7eU4iO9qW1xV8nM")
os.environ.setdefault("DEBUG", "false")


def _local_setting(name: str) -> str | None:
    """`name` from the environment, else from the checkout's .env (which the settings read only later)."""
    if name in os.environ:
        return os.environ[name]
    path = Path(__file__).resolve().parent.parent / ".env"
    for line in path.read_text().splitlines() if path.exists() else ():
        key, sep, value = line.partition("=")
        if sep and key.strip() == name:
            return value.strip().strip("'\"")
    return None


# A Redis database of its own, so a running development system and the tests never share queues or cache.
# TEST_REDIS_URL (in the environment or .env) names another, so that two checkouts on one machine can run their
# suites at once (with DATABASE_URL naming a database of each's own, whose test_ copy the suite then uses).
os.environ.setdefault("REDIS_URL", _local_setting("TEST_REDIS_URL") or "redis://localhost:6379/15")
# Every request of the suite comes from one address, and the schema tests send the token endpoint wrong
# passwords, so the login limit is out of the way; tests/accounts/test_login_throttling.py sets its own.
os.environ.setdefault("LOGIN_FAILURE_LIMIT", "1000")
# The tests' webhook receivers listen on this machine (the worker they start inherits this too). The tests of
# the address rules themselves run with the production default, none (tests/notifications/test_egress.py).
os.environ.setdefault("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
# No broker account syncs from the test process unless a test asks (tests/mqtt/broker.py); a development .env
# would otherwise turn them on for every device a test creates.
os.environ.setdefault("MQTT_ADMIN_USERNAME", "")

# Every process of a test run (pytest and the worker it starts, which inherits this environment) counts
# metrics into one fresh directory, so /metrics sees the worker's counts too.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="telemetry-test-metrics-")

from telemetry_project.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Static files are served from the apps (WHITENOISE_USE_FINDERS); an existing root keeps whitenoise quiet.
STATIC_ROOT.mkdir(exist_ok=True)  # noqa: F405

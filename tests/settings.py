"""Settings for the test suite: the real settings with test-only environment defaults."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("DEBUG", "false")
# A Redis database of its own, so a running development system and the tests never share queues or cache.
os.environ.setdefault("REDIS_URL", "redis://localhost:6379/15")
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

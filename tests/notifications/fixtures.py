"""Fixtures of the alerting tests (tests/alerts and tests/notifications import them in their conftest)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.notifications.receiver import Receiver

# The session's Celery worker is another process, so Django's locmem outbox would be invisible from the
# tests: the worker writes its email to files here instead. Conftest modules are imported while tests are
# collected, before the session worker starts, so it inherits these. Quicker retries keep its tests short.
WORKER_OUTBOX = Path(tempfile.mkdtemp(prefix="telemetry-test-outbox-"))
os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.filebased.EmailBackend"
os.environ["EMAIL_FILE_PATH"] = str(WORKER_OUTBOX)
os.environ["NOTIFY_RETRY_BASE_S"] = "0.5"


@pytest.fixture
def receiver():
    """A local HTTP server for webhooks and gateways, answering 200 unless scripted otherwise."""
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def worker_outbox() -> Path:
    """Where the worker's email lands; emptied for each test."""
    for path in WORKER_OUTBOX.glob("*"):
        path.unlink()
    return WORKER_OUTBOX

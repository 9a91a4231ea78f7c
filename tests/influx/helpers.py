"""Writing line protocol to /api/v2/write and following its batch, for the tests of the InfluxDB write API."""

from __future__ import annotations

import gzip
import time
from urllib.parse import urlencode

from django.core.cache import cache

from apps.ingest.models import IngestBatch
from apps.ingest.pipeline import batch_process
from apps.ingest.resolution import GENERATION_KEY, clear_cache

WRITE = "/api/v2/write"


def recent_s(seconds_ago: int = 60) -> int:
    """A timestamp in seconds, some time before now (inside the accepted window)."""
    return int(time.time()) - seconds_ago


def write(client, body: str | bytes, *, compress: bool = False, **params):
    """POST line protocol the way an InfluxDB client does (org and bucket given, precision as asked)."""
    data = body.encode() if isinstance(body, str) else body
    headers = {}
    if compress:
        data = gzip.compress(data)
        headers["HTTP_CONTENT_ENCODING"] = "gzip"
    query = urlencode({"org": "plant", "bucket": "telemetry", **params})
    return client.generic("POST", f"{WRITE}?{query}", data, content_type="text/plain; charset=utf-8", **headers)


def batch_of(response) -> IngestBatch:
    """The batch a write's Location header names."""
    batch_id = response["Location"].rstrip("/").rsplit("/", 1)[-1]
    return IngestBatch.objects.get(pk=batch_id)


def stored_batch(response) -> IngestBatch:
    """Run the batch of a write the way the worker does, and return it finished."""
    batch = batch_of(response)
    batch_process(batch_id=str(batch.pk))
    batch.refresh_from_db()
    return batch


def reset_rate_limits() -> None:
    """Empty the shared cache, where the rate-limit counters are. It also holds the sensor configuration
    generation: a new, never-seen one makes every process (the worker's too) drop its cached sensors, which
    an earlier test's world may still fill."""
    cache.clear()
    cache.set(GENERATION_KEY, time.time_ns(), timeout=None)
    clear_cache()

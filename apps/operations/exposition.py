"""Metrics served by a process of its own (a worker or the MQTT bridge on a host without a web process)."""

from __future__ import annotations

import logging
import os

from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

logger = logging.getLogger(__name__)


def serve_metrics() -> None:
    """With METRICS_PORT set, serve this host's metrics (every process counting into
    PROMETHEUS_MULTIPROC_DIR, or just this one) on that port for a scraper. Web processes serve /metrics."""
    port = settings.METRICS_PORT
    if not port:
        return
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    start_http_server(port, addr="0.0.0.0", registry=registry)
    logger.info("metrics served on port %d", port)

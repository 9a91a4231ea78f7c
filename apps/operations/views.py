"""GET /metrics in the Prometheus text format, for a scraper on the allow-list or holding the token."""

from __future__ import annotations

import hmac
import ipaddress
import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

from apps.operations.collectors import scrape_collectors


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[len("Bearer ") :], token):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in settings.METRICS_ALLOWED_NETWORKS)


def _scrape() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)  # every process's counts, from their files
    else:
        counted = REGISTRY  # a single process: its own counts
    read_now = CollectorRegistry()
    for collector in scrape_collectors():
        read_now.register(collector)
    return generate_latest(counted) + generate_latest(read_now)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return JsonResponse(
            {
                "detail": "Metrics are served to the allow-listed networks or with 'Authorization: Bearer <METRICS_TOKEN>'.",
                "errors": {},
            },
            status=403,
        )
    return HttpResponse(_scrape(), content_type=CONTENT_TYPE_LATEST)

"""Reading /metrics in tests: a scrape, and one sample's value out of it."""

from __future__ import annotations

import re

from django.test import Client

METRICS = "/metrics"
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def scrape(client: Client | None = None, **extra) -> str:
    response = (client or Client()).get(METRICS, **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def sample_value(text: str, metric: str, /, **labels: str) -> float:
    """The sum of the samples `metric{labels...}` of a scrape (0 when there is none)."""
    return sum(values(text, metric, **labels))


def values(text: str, metric: str, /, **labels: str) -> list[float]:
    """Every sample `metric{labels...}` of a scrape (more labels on a sample are fine)."""
    found = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or match.group(1) != metric:
            continue
        sample_labels = set(part for part in (match.group(2) or "{}")[1:-1].split(",") if part)
        if all(f'{key}="{value}"' in sample_labels for key, value in labels.items()):
            found.append(float(match.group(3)))
    return found

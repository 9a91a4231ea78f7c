"""The scrape-time collectors of other apps reach /metrics by registering from their AppConfig.ready, once."""

from __future__ import annotations

from apps.aggregates.metrics import RollupWatermarkCollector
from apps.alerts.metrics import AlertsCollector
from apps.ingest.metrics import IngestBacklogCollector
from apps.notifications.metrics import NotificationsCollector
from apps.operations import collectors


def test_every_app_collector_is_registered_once_by_its_app():
    kinds = [type(collector) for collector in collectors.scrape_collectors()]
    for kind in (AlertsCollector, NotificationsCollector, IngestBacklogCollector, RollupWatermarkCollector):
        assert kinds.count(kind) == 1


def test_registering_a_collector_again_keeps_one():
    before = len(collectors.scrape_collectors())
    collectors.register(AlertsCollector())
    assert len(collectors.scrape_collectors()) == before

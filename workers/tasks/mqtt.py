"""Tasks of the MQTT side: keeping the broker's accounts in step with the devices, and replaying the messages
the bridge kept as dead letters. See workers/celery.py for how modules are registered."""

from __future__ import annotations

import logging

from apps.core.tasks import RECONCILE_BROKER_ACCOUNTS_TASK, REPLAY_DEAD_LETTER_TASK, SYNC_DEVICE_ACCOUNT_TASK
from apps.mqtt.broker_accounts import BrokerAdminError, Dynsec, broker_account_sync, broker_accounts_reconcile
from apps.mqtt.config import admin_config
from apps.mqtt.replay import dead_letter_replay
from workers.base import TelemetryTask
from workers.celery import app

logger = logging.getLogger(__name__)


@app.task(base=TelemetryTask, name=SYNC_DEVICE_ACCOUNT_TASK)
def sync_device_account(device_id: str) -> str:
    """Right after a device was created, changed or deleted: its broker account follows. A broker that cannot
    be reached is left to the reconciliation (every MQTT_ACCOUNTS_SYNC_INTERVAL_S), not retried here."""
    try:
        with Dynsec(admin_config()) as dynsec:
            return broker_account_sync(dynsec=dynsec, device_id=device_id)
    except BrokerAdminError as exc:
        logger.warning("mqtt accounts: %s not synced now (%s); the reconciliation will", device_id, exc)
        return "deferred"


@app.task(base=TelemetryTask, name=RECONCILE_BROKER_ACCOUNTS_TASK)
def reconcile_broker_accounts() -> dict:
    """Beat: every account the backend manages, in line with the database (repairs whatever was missed)."""
    try:
        with Dynsec(admin_config()) as dynsec:
            return broker_accounts_reconcile(dynsec=dynsec)
    except BrokerAdminError as exc:
        logger.warning("mqtt accounts: reconciliation skipped: %s", exc)
        return {"skipped": 1}


@app.task(base=TelemetryTask, name=REPLAY_DEAD_LETTER_TASK)
def replay_dead_letter(dead_letter_id: int) -> str:
    """The admin's replay of an MQTT dead letter: the message through the bridge's checks and handlers again."""
    return dead_letter_replay(dead_letter_id=dead_letter_id)

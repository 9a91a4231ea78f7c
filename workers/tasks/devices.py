"""Tasks of the devices side: sending commands, expiring them, and the connectivity sweep that marks silent
devices offline and tells alerting. See workers/celery.py for how modules are registered."""

from __future__ import annotations

import logging

from django.conf import settings

from apps.alerts.services import alert_device_offline, alert_device_online
from apps.commands.services import command_send, commands_dispatch_pending, commands_expire
from apps.core.tasks import CHECK_CONNECTIVITY_TASK, SEND_COMMAND_TASK, SWEEP_COMMANDS_TASK
from apps.devices.connectivity import devices_connectivity_sweep
from apps.devices.models import Device
from apps.mqtt.publisher import publish_command
from workers.base import TelemetryTask
from workers.celery import app

logger = logging.getLogger(__name__)


@app.task(base=TelemetryTask, name=SEND_COMMAND_TASK)
def send_command(command_id: str) -> str:
    """Publish one pending command to its device; a broker that cannot be reached is retried with backoff
    (and the command sweep queues it again later if the retries run out)."""
    return command_send(command_id=command_id, publish=publish_command)


@app.task(base=TelemetryTask, name=SWEEP_COMMANDS_TASK)
def sweep_commands() -> dict:
    """Beat: expire commands past their time to live, then queue again the pending commands whose device
    can take them (a send that never got queued, or whose device came back by HTTP or through ingest)."""
    expired = commands_expire()
    queued = commands_dispatch_pending()
    return {"expired": expired, "queued": queued}


def report_offline(device: Device) -> None:
    alert_device_offline(device_id=device.pk, since=device.offline_since or device.last_seen)


def report_online(device: Device) -> None:
    alert_device_online(device_id=device.pk, at=device.last_seen)


@app.task(base=TelemetryTask, name=CHECK_CONNECTIVITY_TASK)
def check_connectivity() -> dict:
    """Beat (and right after an MQTT status message): devices silent past their timeout go offline; every
    change of connectivity is reported to alerting once."""
    offline, back = devices_connectivity_sweep(
        default_offline_after_s=settings.DEVICE_OFFLINE_AFTER_S,
        report_offline=report_offline,
        report_online=report_online,
    )
    if offline or back:
        logger.info("connectivity: %s device(s) reported offline, %s back online", offline, back)
    return {"offline": offline, "back": back}

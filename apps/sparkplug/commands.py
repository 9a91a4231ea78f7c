"""Commands of the command API to Sparkplug devices: a "write" command whose params set metrics the device
declared writable in its birth (a "writable" property true), published as an NCMD (the edge node itself) or
DCMD (a device behind it)."""

from __future__ import annotations

from apps.core.errors import ApplicationError
from apps.devices.models import Device
from apps.sparkplug import payloads
from apps.sparkplug.models import Endpoint

WRITE = "write"


def _endpoint(device: Device) -> Endpoint | None:
    return Endpoint.objects.filter(device=device).first()


def command_check(*, device: Device, cmd: str, params: dict) -> None:
    """For a Sparkplug device, refuse (400) a command that is not a write of writable metrics."""
    endpoint = _endpoint(device)
    if endpoint is None:
        return
    if cmd != WRITE:
        raise ApplicationError(
            f"{device.device_id} is a Sparkplug device: its commands are metric writes.",
            errors={"cmd": [f'Must be "{WRITE}", with params naming writable metrics and their values.']},
        )
    writable = sorted(name for name, metric in endpoint.metrics.items() if metric.get("writable"))
    if not params:
        raise ApplicationError(
            "A write needs at least one metric.", errors={"params": [f"Writable metrics: {', '.join(writable)}."]}
        )
    refused = {
        f"params.{name}": [f"Not a writable metric of {device.device_id} (writable: {', '.join(writable) or 'none'})."]
        for name in params
        if name not in writable
    }
    if refused:
        raise ApplicationError("The device does not declare these metrics writable.", errors=refused)


def command_publication(device: Device, message: dict) -> tuple[str, bytes] | None:
    """(topic, payload) of a command to a Sparkplug device, None for any other device."""
    endpoint = _endpoint(device)
    if endpoint is None:
        return None
    message_type = payloads.DCMD if endpoint.device_name else payloads.NCMD
    topic = payloads.topic_for(endpoint.group, message_type, endpoint.edge_node, endpoint.device_name)
    writes = {
        name: (endpoint.metrics.get(name, {}).get("datatype", payloads.DOUBLE), value)
        for name, value in message["params"].items()
    }
    return topic, payloads.metric_write(writes)

"""Simulated devices: realistic readings over MQTT or HTTP, answering commands like real firmware would.

Each device sends one datagram (seed 003's v2 format) every 1/rate seconds with all its sensors:
- temperature follows a daily cycle (coolest near 03:00, warmest near 15:00) around a per-device base, with a
  slow random walk and noise; humidity moves against it; perceived temperature follows both;
- DC meters hold about 750 V with a ripple, and a current that follows the shifts (06:00-22:00);
- now and then a breach: one sensor ramps past its warning or critical band for a few minutes and back;
- dropouts: a datagram lost now and then (its seq is skipped, so the backend counts a gap), and rarely a
  silence of minutes, over MQTT half the time a lost connection (the broker then publishes the last will).

Over MQTT every device logs in with its own account, has its own connection and persistent session, signs v3
messages, announces itself (hello, status online announcing the signed "offline" last will it made for this
connection) and answers commands on its command topic: ping, set_interval, reboot, ota_update (reporting
progress on ota/status); anything else is rejected. Over HTTP devices post to
/api/v1/ingest/ with their key and send a heartbeat at start (commands need MQTT).
"""

from __future__ import annotations

import logging
import math
import os
import random
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import orjson
import paho.mqtt.client as mqtt
from django.conf import settings
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from apps.demo.incident import STUCK_HUMIDITY, IncidentSchedule, IncidentTargets, breach_value, phase_at
from apps.devices.keys import hash_ingest_key
from apps.devices.models import Device
from apps.mqtt import topics
from apps.mqtt.config import BrokerConfig, new_client
from apps.mqtt.signing import iso, mqtt_password, signed_message, verify

logger = logging.getLogger(__name__)

FW_VERSION = "1.4.2"


def command_verified(payload: bytes, secret: str) -> bool:
    """A command the backend signed for this device: v3 (kind "command"), or v2 while the backend still signs
    that way (MQTT_ACCEPT_V2_SIGNATURES, the migration to v3)."""
    if verify(payload, secret, kind=topics.COMMAND):
        return True
    return settings.MQTT_ACCEPT_V2_SIGNATURES and verify(payload, secret)


@dataclass
class SensorSpec:
    type_code: str
    channel: str
    unit: str
    low: float | None
    high: float | None


@dataclass
class Breach:
    type_code: str
    offset: float
    started: float
    duration_s: float

    def offset_at(self, now: float) -> float:
        """Ramps in over the first fifth, holds, ramps out over the last fifth."""
        progress = (now - self.started) / self.duration_s
        if progress <= 0 or progress >= 1:
            return 0.0
        return self.offset * min(1.0, progress * 5, (1 - progress) * 5)


# Type code: how far a breach pushes it (towards the critical band of the demo thresholds).
BREACH_OFFSETS = {
    "temperature": (12.0, 20.0),
    "humidity": (28.0, 40.0),
    "pcv_temperature": (10.0, 16.0),
    "voltage_dc": (-160.0, -90.0),
    "current_dc": (220.0, 320.0),
}


class SignalModel:
    """The readings of one device at a moment, from its sensors' types."""

    def __init__(self, sensors: list[SensorSpec], rng: random.Random, tz: ZoneInfo) -> None:
        self.sensors = sensors
        self.rng = rng
        self.tz = tz
        self.base_temperature = rng.uniform(19.0, 23.0)
        self.base_humidity = rng.uniform(38.0, 52.0)
        self.base_voltage = rng.uniform(742.0, 758.0)
        self.walk = 0.0
        self.breach: Breach | None = None
        # Values a scripted incident holds, by type code, instead of the signal (apps/demo/incident.py).
        self.overrides: dict[str, float] = {}

    def maybe_start_breach(self, now: float, chance: float) -> None:
        if self.breach is not None and now < self.breach.started + self.breach.duration_s:
            return
        self.breach = None
        candidates = [sensor.type_code for sensor in self.sensors if sensor.type_code in BREACH_OFFSETS]
        if candidates and self.rng.random() < chance:
            type_code = self.rng.choice(candidates)
            self.breach = Breach(
                type_code, self.rng.uniform(*BREACH_OFFSETS[type_code]), now, self.rng.uniform(90, 300)
            )

    def sample(self, moment: datetime, now: float) -> list[dict]:
        local = moment.astimezone(self.tz)
        hours = local.hour + local.minute / 60 + local.second / 3600
        daily = math.sin(2 * math.pi * (hours - 9) / 24)  # -1 at 03:00, +1 at 15:00
        self.walk = max(-1.5, min(1.5, self.walk + self.rng.gauss(0, 0.05)))
        temperature = self.base_temperature + 3.5 * daily + self.walk + self.rng.gauss(0, 0.15)
        humidity = self.base_humidity - 6 * daily - 2 * self.walk + self.rng.gauss(0, 0.6)
        on_shift = 6 <= local.hour < 22
        values = {
            "temperature": temperature,
            "humidity": humidity,
            "pcv_temperature": temperature + 0.08 * (humidity - 40) + self.rng.gauss(0, 0.1),
            "voltage_dc": self.base_voltage + 6 * daily + self.rng.gauss(0, 1.5),
            "current_dc": (260 if on_shift else 60) + 40 * daily + self.rng.gauss(0, 6),
        }
        measurements = []
        ts = iso(moment)
        for sensor in self.sensors:
            value = values.get(sensor.type_code)
            if value is None:
                value = self._generic(sensor, daily)
            if self.breach is not None and self.breach.type_code == sensor.type_code:
                value += self.breach.offset_at(now)
            if sensor.type_code in self.overrides:
                value = self.overrides[sensor.type_code]
            if sensor.low is not None:
                value = max(value, sensor.low)
            if sensor.high is not None:
                value = min(value, sensor.high)
            measurement = {"ts": ts, "type": sensor.type_code, "val": round(value, 3), "unit": sensor.unit}
            if sensor.channel:
                measurement["channel"] = sensor.channel
            measurements.append(measurement)
        return measurements

    def _generic(self, sensor: SensorSpec, daily: float) -> float:
        low = sensor.low if sensor.low is not None else 0.0
        high = sensor.high if sensor.high is not None else low + 100.0
        middle, span = (low + high) / 2, (high - low) / 2
        return middle + 0.1 * span * daily + self.rng.gauss(0, 0.01 * span)


@dataclass
class SimulatedDevice:
    device_id: str
    pk: int
    key: str
    signals: SignalModel
    interval_s: float
    fw_version: str = FW_VERSION
    seq: int = 0
    next_due: float = 0.0
    silent_until: float = 0.0
    handled_commands: set[str] = field(default_factory=set)
    actions: deque = field(default_factory=deque)
    client: mqtt.Client | None = None
    # Nonces are "<boot>-<message number>": a new boot id per run keeps them unique across restarts.
    boot: str = field(default_factory=lambda: secrets.token_hex(4))
    sent: int = 0
    will_nonce: str = ""

    @property
    def secret(self) -> str:
        return hash_ingest_key(self.key)

    def signed(self, kind: str, message: dict, *, nonce: str | None = None) -> bytes:
        """A v3 message: sent now, with a nonce this device never used."""
        self.sent += 1
        return signed_message(message, self.secret, kind=kind, nonce=nonce or f"{self.boot}-{self.sent}")

    def datagram(self, moment: datetime, now: float) -> dict:
        self.seq += 1
        return {
            "device_id": self.device_id,
            "ts": iso(moment),
            "seq": self.seq,
            "msg_type": "telemetry",
            "measurements": self.signals.sample(moment, now),
        }


def load_devices(
    keys: dict[str, str], *, count: int, rate: float, rng: random.Random, tz: ZoneInfo
) -> list[SimulatedDevice]:
    """`count` devices with a working key in `keys` and sensors, spread evenly over them in external id
    order (so a few simulated devices of the demo plant are a mix of climate sensors and DC meters)."""
    candidates = []
    devices = (
        Device.objects.filter(device_id__in=list(keys))
        .exclude(status=Device.Status.INACTIVE)
        .prefetch_related("sensors__sensor_type")
        .order_by("device_id")
    )
    for device in devices:
        if hash_ingest_key(keys[device.device_id]) != device.ingest_key_hash:
            logger.warning("simulate: the key for %s no longer works (rotated?); skipped", device.device_id)
        elif device.sensors.all():
            candidates.append(device)
    step = max(len(candidates) / count, 1.0)
    chosen = [candidates[int(index * step)] for index in range(min(count, len(candidates)))]
    interval = 1.0 / rate
    return [
        SimulatedDevice(
            device_id=device.device_id,
            pk=device.pk,
            key=keys[device.device_id],
            signals=SignalModel(
                [
                    SensorSpec(
                        sensor.sensor_type.code,
                        sensor.channel,
                        sensor.sensor_type.unit,
                        sensor.sensor_type.plausible_min,
                        sensor.sensor_type.plausible_max,
                    )
                    for sensor in device.sensors.all()
                ],
                random.Random(rng.random()),
                tz,
            ),
            interval_s=interval,
            next_due=time.monotonic() + rng.uniform(0, interval),
        )
        for device in chosen
    ]


class MqttTransport:
    """One connection per device, each with a signed "offline" last will and a persistent session, so the
    broker keeps commands for a device that is briefly away."""

    name = "mqtt"

    def __init__(self, config: BrokerConfig, *, topic_root: str, stats: Counter) -> None:
        self.config = config
        self.root = topic_root
        self.stats = stats

    def topic(self, device: SimulatedDevice, kind: str) -> str:
        return topics.device_topic(self.root, device.device_id, kind)

    def publish(self, device: SimulatedDevice, kind: str, message: dict, *, qos: int = 1) -> None:
        if device.client is None:
            return
        info = device.client.publish(self.topic(device, kind), device.signed(kind, message), qos=qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.stats["publish_errors"] += 1

    def start(self, device: SimulatedDevice) -> None:
        # Its own account on the broker: the device id and the password derived from its key.
        credentials = replace(self.config, username=device.device_id, password=mqtt_password(device.secret))
        client = new_client(client_id=f"sim-{self.root}-{device.device_id}", config=credentials)
        client.on_connect = lambda *args: self._on_connect(device, *args)
        client.on_message = lambda client, userdata, message: self._on_command(device, message)
        client.reconnect_delay_set(1, 30)
        device.client = client
        self._connect(device)

    def _connect(self, device: SimulatedDevice) -> None:
        # A will of this connection's own (its nonce is announced once connected), made now, as firmware does.
        device.will_nonce = secrets.token_hex(8)
        will = {"device_id": device.device_id, "msg_type": "status", "status": "offline"}
        device.client.will_set(
            self.topic(device, topics.STATUS), device.signed(topics.STATUS, will, nonce=device.will_nonce), qos=1
        )
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        device.client.connect_async(
            self.config.host,
            self.config.port,
            keepalive=self.config.keepalive_s,
            clean_start=False,
            properties=properties,
        )
        # paho's thread keeps trying (with backoff) until the broker answers.
        device.client.loop_start()

    def _on_connect(self, device: SimulatedDevice, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.stats["connect_refused"] += 1
            return
        client.subscribe(self.topic(device, topics.COMMAND), qos=1)
        self.publish(
            device,
            topics.HELLO,
            {"device_id": device.device_id, "msg_type": "hello", "fw_version": device.fw_version},
        )
        self.publish(
            device,
            topics.STATUS,
            {"device_id": device.device_id, "msg_type": "status", "status": "online", "will_nonce": device.will_nonce},
        )

    def _on_command(self, device: SimulatedDevice, message) -> None:
        if not command_verified(message.payload, device.secret):
            self.stats["commands_unsigned"] += 1
            return
        command = orjson.loads(message.payload)
        # Devices run commands in their own time: the simulation's loop picks it up, not paho's thread.
        device.actions.append(command)

    def lose_connection(self, device: SimulatedDevice) -> None:
        """Drop off as if the power went: the broker publishes the device's last will."""
        if device.client is not None:
            device.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message"))

    def reconnect(self, device: SimulatedDevice) -> None:
        if device.client is not None:
            device.client.loop_stop()  # its thread ended with the deliberate disconnect
            self._connect(device)

    def heartbeat(self, device: SimulatedDevice) -> None:
        self.publish(
            device,
            topics.HELLO,
            {"device_id": device.device_id, "msg_type": "hello", "fw_version": device.fw_version},
        )

    def send(self, device: SimulatedDevice, datagram: dict) -> None:
        self.publish(device, topics.TELEMETRY, datagram)

    def answer(
        self, device: SimulatedDevice, command: dict, status: str, detail: str = "", result: dict | None = None
    ) -> None:
        ack = {
            "device_id": device.device_id,
            "msg_type": "command_ack",
            "cmd_id": command.get("cmd_id"),
            "status": status,
        }
        if detail:
            ack["detail"] = detail
        if result is not None:
            ack["result"] = result
        self.publish(device, topics.COMMAND_ACK, ack)

    def ota_report(self, device: SimulatedDevice, status: str, progress: int, fw_version: str) -> None:
        report = {
            "device_id": device.device_id,
            "msg_type": "ota_status",
            "status": status,
            "progress": progress,
            "fw_version": fw_version,
        }
        self.publish(device, topics.OTA_STATUS, report)

    def stop_all(self, devices: list[SimulatedDevice], *, timeout_s: float = 2.0) -> None:
        """Say goodbye (status offline) from every device, wait for the broker to take them for at most
        `timeout_s` in all (it may be stopping too), and disconnect."""
        sent = []
        for device in devices:
            if device.client is not None and device.client.is_connected():
                goodbye = {"device_id": device.device_id, "msg_type": "status", "status": "offline"}
                sent.append(
                    device.client.publish(
                        self.topic(device, topics.STATUS), device.signed(topics.STATUS, goodbye), qos=1
                    )
                )
        deadline = time.monotonic() + timeout_s
        for info in sent:
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                pass
        clients = [device.client for device in devices if device.client is not None]
        # Every network thread told first, then joined: one that waits to reconnect (the broker went away)
        # wakes within a second to see it, and they all do at once.
        for client in clients:
            client.disconnect()
        for client in clients:
            client.loop_stop()


class HttpTransport:
    """POSTs datagrams to the ingest API with the device's key, from a small pool of threads."""

    name = "http"

    def __init__(self, base_url: str, *, stats: Counter, workers: int = 8) -> None:
        self.base_url = base_url.rstrip("/")
        self.stats = stats
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="simulate-http")
        self.in_flight = 0
        self.lock = threading.Lock()

    def _post(self, path: str, key: str, body: dict | bytes) -> None:
        # A dict goes to our JSON API with the device scheme; bytes are line protocol, with the "Token" scheme
        # every InfluxDB client sends (the influx app takes a device key there too).
        is_json = isinstance(body, dict)
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=orjson.dumps(body) if is_json else body,
            method="POST",
            headers={
                "Content-Type": "application/json" if is_json else "text/plain; charset=utf-8",
                "Authorization": f"Device {key}" if is_json else f"Token {key}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except (urllib.error.URLError, OSError) as exc:
            self.stats["http_errors"] += 1
            logger.debug("simulate: POST %s failed: %s", path, exc)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _submit(self, path: str, key: str, body: dict | bytes) -> None:
        with self.lock:
            if self.in_flight > 200:  # the server is not keeping up; drop rather than queue without bound
                self.stats["http_backlog_dropped"] += 1
                return
            self.in_flight += 1
        self.pool.submit(self._post, path, key, body)

    def start(self, device: SimulatedDevice) -> None:
        self.heartbeat(device)

    def heartbeat(self, device: SimulatedDevice) -> None:
        self._submit(f"/api/v1/devices/{device.pk}/heartbeat/", device.key, {"fw_version": device.fw_version})

    def send(self, device: SimulatedDevice, datagram: dict) -> None:
        self._submit("/api/v1/ingest/", device.key, datagram)

    def lose_connection(self, device: SimulatedDevice) -> None:
        pass

    def reconnect(self, device: SimulatedDevice) -> None:
        self.heartbeat(device)

    def stop_all(self, devices: list[SimulatedDevice]) -> None:
        self.pool.shutdown(wait=True, cancel_futures=False)


def line_protocol(datagram: dict) -> bytes:
    """A datagram as InfluxDB line protocol, one line per measurement, timestamps in milliseconds."""
    lines = []
    for measurement in datagram["measurements"]:
        tags = f"device={datagram['device_id']}"
        if measurement.get("channel"):
            tags += f",channel={measurement['channel']}"
        stamp = int(datetime.fromisoformat(measurement["ts"]).timestamp() * 1000)
        lines.append(f"telemetry,{tags} {measurement['type']}={measurement['val']} {stamp}")
    return "\n".join(lines).encode()


class LineProtocolTransport(HttpTransport):
    """Like a Telegraf or an InfluxDB client in front of a device: posts its readings to /api/v2/write."""

    name = "line protocol"

    def send(self, device: SimulatedDevice, datagram: dict) -> None:
        self._submit("/api/v2/write?precision=ms", device.key, line_protocol(datagram))


class SplitTransport:
    """Some devices over one transport, the rest over another (the demo: most over MQTT, a few as line
    protocol). A further source, such as a Sparkplug edge node, joins the same way."""

    def __init__(self, primary, secondary, secondary_ids: set[str]) -> None:
        self.primary, self.secondary, self.secondary_ids = primary, secondary, secondary_ids
        self.stats = primary.stats
        self.name = f"{primary.name} and {secondary.name} ({len(secondary_ids)})"

    def _for(self, device: SimulatedDevice):
        return self.secondary if device.device_id in self.secondary_ids else self.primary

    def start(self, device: SimulatedDevice) -> None:
        self._for(device).start(device)

    def send(self, device: SimulatedDevice, datagram: dict) -> None:
        self._for(device).send(device, datagram)

    def heartbeat(self, device: SimulatedDevice) -> None:
        self._for(device).heartbeat(device)

    def lose_connection(self, device: SimulatedDevice) -> None:
        self._for(device).lose_connection(device)

    def reconnect(self, device: SimulatedDevice) -> None:
        self._for(device).reconnect(device)

    # Commands arrive over MQTT only, so only the primary (MQTT) answers them.
    def answer(self, device: SimulatedDevice, *args, **kwargs) -> None:
        self.primary.answer(device, *args, **kwargs)

    def ota_report(self, device: SimulatedDevice, *args) -> None:
        self.primary.ota_report(device, *args)

    def stop_all(self, devices: list[SimulatedDevice]) -> None:
        self.primary.stop_all([device for device in devices if device.device_id not in self.secondary_ids])
        self.secondary.stop_all([device for device in devices if device.device_id in self.secondary_ids])


class Simulation:
    def __init__(
        self,
        devices: list[SimulatedDevice],
        transport,
        *,
        rng: random.Random,
        breach_chance_per_minute: float = 0.01,
        dropout_chance: float = 0.01,
        silence_chance_per_hour: float = 0.05,
        report: Callable[[str], None] | None = None,
        report_every_s: float = 10.0,
        incident: tuple[IncidentSchedule, IncidentTargets] | None = None,
    ) -> None:
        self.devices = devices
        self.incident = incident
        self.by_id = {device.device_id: device for device in devices}
        self.transport = transport
        self.rng = rng
        self.breach_chance_per_minute = breach_chance_per_minute
        self.dropout_chance = dropout_chance
        self.silence_chance_per_hour = silence_chance_per_hour
        self.report = report
        self.report_every_s = report_every_s
        self.stats = getattr(transport, "stats", Counter())
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self, duration_s: float = 0) -> Counter:
        """Until `duration_s` seconds passed (0: until stop())."""
        for device in self.devices:
            self.transport.start(device)
        started = last_report = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if duration_s and now - started >= duration_s:
                    break
                if self.incident is not None:
                    self._play_incident(now - started, now)
                for device in self.devices:
                    self._tick(device, now)
                if self.report and now - last_report >= self.report_every_s:
                    self.report(self.summary())
                    last_report = now
                self._stop.wait(0.02)
        finally:
            self.transport.stop_all(self.devices)
        return self.stats

    def _play_incident(self, elapsed_s: float, now: float) -> None:
        schedule, targets = self.incident
        phase = phase_at(schedule, elapsed_s)
        if (breached := self.by_id.get(targets.breach or "")) is not None:
            value = breach_value(phase)
            if value is None:
                breached.signals.overrides.pop("temperature", None)
            else:
                breached.signals.overrides["temperature"] = value
        if (stuck := self.by_id.get(targets.stuck or "")) is not None:
            if phase.stuck:
                stuck.signals.overrides["humidity"] = STUCK_HUMIDITY
            else:
                stuck.signals.overrides.pop("humidity", None)
        offline = self.by_id.get(targets.offline or "")
        if offline is not None and phase.offline and not offline.silent_until:
            # _tick brings it back when the silence ends, as for a random one.
            offline.silent_until = now + phase.offline_left_s
            self.transport.lose_connection(offline)
            self.stats["incidents"] += 1

    def _tick(self, device: SimulatedDevice, now: float) -> None:
        while device.actions:
            self._run_command(device, device.actions.popleft())
        if device.silent_until:
            if now < device.silent_until:
                return
            device.silent_until = 0.0
            self.transport.reconnect(device)
            self.stats["silences_ended"] += 1
        if now < device.next_due:
            return
        device.next_due = (
            max(device.next_due + device.interval_s, now) + self.rng.uniform(-0.05, 0.05) * device.interval_s
        )
        per_tick = device.interval_s / 60
        device.signals.maybe_start_breach(now, self.breach_chance_per_minute * per_tick)
        if self.rng.random() < self.silence_chance_per_hour * device.interval_s / 3600:
            device.silent_until = now + self.rng.uniform(60, 900)
            self.stats["silences"] += 1
            if self.rng.random() < 0.5:
                self.transport.lose_connection(device)
            return
        datagram = device.datagram(datetime.now(UTC), now)
        if self.rng.random() < self.dropout_chance:
            self.stats["datagrams_lost"] += 1  # its seq is used up: the backend sees a gap
            return
        self.transport.send(device, datagram)
        self.stats["datagrams"] += 1
        self.stats["readings"] += len(datagram["measurements"])

    def _run_command(self, device: SimulatedDevice, command: dict) -> None:
        cmd_id = str(command.get("cmd_id"))
        if cmd_id in device.handled_commands:  # QoS 1 may deliver a command twice
            return
        device.handled_commands.add(cmd_id)
        self.stats["commands"] += 1
        transport = self.transport
        expires_at = command.get("expires_at")
        if isinstance(expires_at, str) and datetime.fromisoformat(expires_at) < datetime.now(UTC):
            transport.answer(device, command, "rejected", "expired before it arrived")
            return
        name, params = command.get("cmd"), command.get("params") or {}
        if name == "ping":
            transport.answer(device, command, "completed", result={"pong": iso(datetime.now(UTC)), "seq": device.seq})
        elif name == "set_interval":
            interval = params.get("interval_s")
            if isinstance(interval, int | float) and 0.05 <= interval <= 3600:
                transport.answer(device, command, "accepted")
                device.interval_s = float(interval)
                device.next_due = time.monotonic() + device.interval_s
                transport.answer(device, command, "completed", f"reporting every {interval} s")
            else:
                transport.answer(device, command, "rejected", "interval_s must be a number from 0.05 to 3600")
        elif name == "reboot":
            transport.answer(device, command, "accepted")
            transport.answer(device, command, "completed", "rebooting")
            device.seq = 0
            transport.heartbeat(device)
        elif name == "ota_update" and isinstance(params.get("fw_version"), str):
            target = params["fw_version"][:64]
            transport.answer(device, command, "accepted")
            for status, progress in (
                ("downloading", 0),
                ("downloading", 50),
                ("downloading", 100),
                ("installing", 100),
            ):
                transport.ota_report(device, status, progress, target)
            device.fw_version = target
            transport.ota_report(device, "success", 100, target)
            transport.heartbeat(device)
            transport.answer(device, command, "completed", f"running {target}")
        else:
            transport.answer(device, command, "rejected", f"unknown command {name!r}")

    def summary(self) -> str:
        stats = self.stats
        return (
            f"{len(self.devices)} devices via {self.transport.name}: {stats['datagrams']} datagrams "
            f"({stats['readings']} readings) sent, {stats['datagrams_lost']} lost on purpose, "
            f"{stats['silences']} silences, {stats['commands']} commands answered, "
            f"{stats['publish_errors'] + stats['http_errors']} errors"
        )


def default_http_url() -> str:
    """Where `make run` serves the API (PORT, as for the web process)."""
    return f"http://127.0.0.1:{os.environ.get('PORT') or 8000}"

import json
import random
import signal
import zoneinfo
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.demo.incident import IncidentSchedule, choose_targets
from apps.demo.plant import threshold_overridden_devices
from apps.demo.simulator import (
    HttpTransport,
    LineProtocolTransport,
    MqttTransport,
    Simulation,
    SplitTransport,
    default_http_url,
    load_devices,
)
from apps.mqtt.config import broker_config


class Command(BaseCommand):
    help = (
        "Simulate devices of the demo plant sending realistic readings (daily temperature cycle, noise, "
        "occasional breaches and dropouts) over MQTT or HTTP, with the keys `seed_demo --device-keys` wrote; "
        "over MQTT they also answer commands. Runs for --duration seconds, or until Ctrl-C."
    )

    def add_arguments(self, parser):
        parser.add_argument("--devices", type=int, default=10, help="how many devices (default 10)")
        parser.add_argument("--rate", type=float, default=1.0, help="datagrams per second per device (default 1)")
        parser.add_argument("--via", choices=["mqtt", "http"], default="mqtt")
        parser.add_argument("--duration", type=float, default=0, help="seconds; 0 runs until Ctrl-C (default)")
        parser.add_argument(
            "--keys", type=Path, default=Path(".run/device-keys.json"), help="JSON map device_id -> ingest key"
        )
        parser.add_argument("--url", default=None, help="API base URL for --via http (default http://127.0.0.1:$PORT)")
        parser.add_argument("--breach-chance", type=float, default=0.01, help="per device and minute (default 0.01)")
        parser.add_argument("--dropout-chance", type=float, default=0.01, help="per datagram (default 0.01)")
        parser.add_argument(
            "--incident-every",
            type=float,
            default=0,
            help="seconds between the scripted incidents of apps/demo/incident.py (0, the default: none)",
        )
        parser.add_argument(
            "--incident-first", type=float, default=60, help="seconds until the first incident (default 60)"
        )
        parser.add_argument(
            "--line-protocol-devices",
            type=int,
            default=0,
            help="with --via mqtt, how many of the devices (the last ones) post InfluxDB line protocol to "
            "/api/v2/write at --url instead (default 0)",
        )
        parser.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable run")

    def handle(self, *args, **options):
        if options["devices"] < 1 or options["rate"] <= 0:
            raise CommandError("--devices must be at least 1 and --rate above 0.")
        try:
            keys = json.loads(options["keys"].read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(
                f"Cannot read device keys from {options['keys']}: {exc}. Write them with "
                "`manage.py seed_demo --device-keys FILE` (make run writes .run/device-keys.json)."
            ) from None
        rng = random.Random(options["seed"])
        devices = load_devices(
            keys, count=options["devices"], rate=options["rate"], rng=rng, tz=zoneinfo.ZoneInfo(settings.TIME_ZONE)
        )
        if not devices:
            raise CommandError(f"None of the devices in {options['keys']} exists with sensors and a working key.")
        if len(devices) < options["devices"]:
            self.stderr.write(f"Only {len(devices)} device(s) with working keys; simulating those.")
        if options["via"] == "mqtt":
            transport = MqttTransport(broker_config(), topic_root=settings.MQTT_TOPIC_ROOT, stats=Counter())
            if options["line_protocol_devices"] > 0:
                line_ids = {device.device_id for device in devices[-options["line_protocol_devices"] :]}
                line_transport = LineProtocolTransport(options["url"] or default_http_url(), stats=transport.stats)
                transport = SplitTransport(transport, line_transport, line_ids)
        else:
            transport = HttpTransport(options["url"] or default_http_url(), stats=Counter())
        incident = None
        if options["incident_every"]:
            try:
                schedule = IncidentSchedule(first_at_s=options["incident_first"], every_s=options["incident_every"])
            except ValueError as exc:
                raise CommandError(f"--incident-every/--incident-first: {exc}") from None
            targets = choose_targets(
                {device.device_id: {sensor.type_code for sensor in device.signals.sensors} for device in devices},
                avoid=threshold_overridden_devices(),
            )
            incident = (schedule, targets)
            self.stdout.write(
                f"simulate: scripted incident after {schedule.first_at_s:g} s, then every {schedule.every_s:g} s: "
                f"{targets.breach} breaches, {targets.offline} goes offline, {targets.stuck} gets stuck"
            )
        simulation = Simulation(
            devices,
            transport,
            rng=rng,
            breach_chance_per_minute=options["breach_chance"],
            dropout_chance=options["dropout_chance"],
            incident=incident,
            report=lambda line: self.stdout.write(f"simulate: {line}"),
        )
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: simulation.stop())
        self.stdout.write(
            f"simulate: {len(devices)} device(s) via {transport.name}, {options['rate']} datagram(s)/s each"
        )
        simulation.run(options["duration"])
        self.stdout.write(f"simulate: done; {simulation.summary()}")

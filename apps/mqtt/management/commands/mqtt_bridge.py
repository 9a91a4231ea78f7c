import signal

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from apps.mqtt.bridge import Bridge, BridgeSettings
from apps.operations.exposition import serve_metrics


class Command(BaseCommand):
    help = (
        "Run the MQTT bridge: subscribe to the devices' topics (telemetry, hello, status, command/ack, "
        "ota/status) and feed the ingest pipeline and device state. Runs until SIGTERM or Ctrl-C; settings "
        "MQTT_* (see docker/.env.example)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--client-id", help="MQTT client id, i.e. the broker session (default MQTT_CLIENT_ID)")
        parser.add_argument("--batch-max-readings", type=int, help="default MQTT_BATCH_MAX_READINGS")
        parser.add_argument("--batch-max-wait", type=float, help="seconds; default MQTT_BATCH_MAX_WAIT_S")
        parser.add_argument("--shared-group", help="MQTT 5 shared subscription group (default MQTT_SHARED_GROUP)")

    def handle(self, *args, client_id=None, batch_max_readings=None, batch_max_wait=None, shared_group=None, **options):
        bridge = Bridge(
            BridgeSettings.from_settings(
                client_id=client_id,
                batch_max_readings=batch_max_readings,
                batch_max_wait_s=batch_max_wait,
                shared_group=shared_group,
            )
        )
        serve_metrics()  # when METRICS_PORT is set: the bridge on a host (or container) of its own
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: bridge.stop())
        try:
            bridge.run()
        except ImproperlyConfigured as exc:  # e.g. MQTT_DEVICE_AUTH=broker with a broker open to anyone
            raise CommandError(str(exc)) from None

import time

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from apps.mqtt.broker_accounts import BrokerAdminError, Dynsec, broker_accounts_reconcile
from apps.mqtt.config import admin_config


class Command(BaseCommand):
    help = (
        "Bring the broker's accounts in line with the database now: the backend's own (MQTT_USERNAME) and one "
        "per device, through the dynamic-security plugin as MQTT_ADMIN_USERNAME. The beat does the same every "
        "MQTT_ACCOUNTS_SYNC_INTERVAL_S."
    )

    def add_arguments(self, parser):
        parser.add_argument("--wait", type=float, default=0, help="seconds to wait for the broker (default 0)")

    def handle(self, *args, wait=0, **options):
        try:
            config = admin_config()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        deadline = time.monotonic() + wait
        while True:
            try:
                with Dynsec(config) as dynsec:
                    done = broker_accounts_reconcile(dynsec=dynsec)
                break
            except BrokerAdminError as exc:
                if time.monotonic() >= deadline:
                    raise CommandError(str(exc)) from None
                time.sleep(1)
        summary = ", ".join(f"{key} {value}" for key, value in sorted(done.items()))
        self.stdout.write(f"mqtt_sync: broker accounts in step ({summary})")

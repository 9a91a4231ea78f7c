import os
import shutil
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from apps.mqtt import mosquitto


class Command(BaseCommand):
    help = (
        "Run the project's Mosquitto (docker/mosquitto.conf) in the foreground on --port, with its persistence "
        "and accounts in --dir: the broker of `make run`. The accounts file is written afresh with only the "
        "admin (MQTT_ADMIN_USERNAME/MQTT_ADMIN_PASSWORD); `manage.py mqtt_sync` adds the backend and the devices."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=1884, help="listener port (default 1884)")
        parser.add_argument("--bind", default="127.0.0.1", help="listener address (default 127.0.0.1)")
        parser.add_argument("--dir", type=Path, default=Path(settings.BASE_DIR) / ".run" / "mosquitto")

    def handle(self, *args, port, bind, dir, **options):
        if shutil.which("mosquitto") is None:
            raise CommandError("mosquitto not found: apt-get install mosquitto mosquitto-clients")
        directory = dir.resolve()
        try:
            config = mosquitto.render_config(directory=directory, port=port, bind_address=bind)
            # Afresh each time, so the admin login always matches the environment; device accounts are
            # provisioned again from the database, and sessions (mosquitto.db) are kept.
            mosquitto.init_accounts(
                directory=directory,
                admin_username=settings.MQTT_ADMIN_USERNAME,
                admin_password=settings.MQTT_ADMIN_PASSWORD,
            )
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"run_broker: Mosquitto on {bind}:{port}, configuration {config}")
        self.stdout.flush()
        os.execvp("mosquitto", ["mosquitto", "-c", str(config)])

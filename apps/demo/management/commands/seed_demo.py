import os
from pathlib import Path

from django.core.management.base import BaseCommand

from apps.core.progress import Progress, add_progress_argument
from apps.demo.device_keys import device_keys_write
from apps.demo.plant import SEED_STEPS, demo_plant_seed


class Command(BaseCommand):
    help = (
        "Build the demo plant (factory, buildings, floors, areas, about fifty devices with sensors, default "
        "thresholds) where it is missing, and set the password of the superuser 'admin': DEMO_ADMIN_PASSWORD "
        "if set, else a new random one. Prints the login and an API token. Safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--device-keys",
            metavar="FILE",
            type=Path,
            help="write a JSON map device_id -> ingest key: the keys issued by this run, plus those already in "
            "FILE that still work",
        )
        parser.add_argument(
            "--rotate-keys", action="store_true", help="issue new ingest keys to every demo device, not only new ones"
        )
        add_progress_argument(parser)

    def handle(self, *args, device_keys: Path | None, rotate_keys: bool, **options):
        with Progress.for_command(self, options, label="seed", unit="steps", total=SEED_STEPS) as progress:
            result = demo_plant_seed(
                admin_password=os.environ.get("DEMO_ADMIN_PASSWORD") or None,
                rotate_keys=rotate_keys,
                on_step=progress.advance,
            )
        created = ", ".join(f"{count} {what}" for what, count in result.created.items() if count)
        self.stdout.write(f"Demo plant: {'created ' + created if created else 'already complete, nothing created'}.")
        for skipped in result.skipped:
            self.stdout.write(self.style.WARNING(f"Skipped the {skipped}."))
        source = "generated, set now" if result.admin_password_generated else "from DEMO_ADMIN_PASSWORD"
        self.stdout.write(f"Admin login: {result.admin_username} / {result.admin_password}  ({source})")
        self.stdout.write(f"Admin API token: {result.admin_token}  (Authorization: Token <token>)")
        if device_keys is not None:
            written = device_keys_write(path=device_keys, issued_keys=result.issued_keys)
            self.stdout.write(
                f"Device keys: {len(result.issued_keys)} issued now, {len(written)} working keys in {device_keys}"
            )
        elif result.issued_keys:
            self.stdout.write(
                self.style.WARNING(
                    f"{len(result.issued_keys)} ingest key(s) were issued and not saved (use --device-keys FILE); "
                    "rotate them in the admin or the API to get usable ones."
                )
            )

import sys

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.core.progress import Progress, add_progress_argument
from apps.ingest.csv_import import csv_rows, normalize_csv_rows
from apps.ingest.models import IngestBatch
from apps.ingest.pipeline import batch_process
from apps.ingest.services import batch_create


class Command(BaseCommand):
    help = (
        "Load historical readings from a CSV file (header: sensor,ts,value) through the ingest pipeline. "
        "Idempotent: running it again stores nothing twice."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV file, or - for standard input")
        parser.add_argument("--chunk-size", type=int, default=10_000)
        parser.add_argument(
            "--queue", action="store_true", help="queue the chunks for the workers instead of storing them here"
        )
        add_progress_argument(parser)

    def handle(self, *args, file, chunk_size, queue, **options):
        stream = sys.stdin.buffer if file == "-" else open(file, "rb")  # noqa: SIM115
        received_at = timezone.now()
        totals = {"rows": 0, "stored": 0, "duplicates": 0, "rejected": 0, "malformed": 0}
        # The number of rows is not known before the end of the file, so no time left: rows and rate only.
        progress = Progress.for_command(self, options, label="import", unit="rows")

        def malformed(line: int, message: str) -> None:
            totals["malformed"] += 1
            if totals["malformed"] <= 20:
                progress.close()
                self.stderr.write(f"line {line}: {message} (skipped)")

        try:
            with stream, progress:
                for chunk in normalize_csv_rows(
                    csv_rows(stream), received_at=received_at, chunk_size=chunk_size, on_error=malformed
                ):
                    batch = batch_create(normalized=chunk, received_at=received_at, source=IngestBatch.Source.IMPORT)
                    totals["rows"] += len(chunk)
                    if not queue:
                        outcome = batch_process(batch_id=str(batch.pk))
                        if outcome is not None:
                            totals["stored"] += outcome.stored
                            totals["duplicates"] += outcome.duplicates
                            totals["rejected"] += outcome.rejected
                    progress.advance(len(chunk))
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from None
        summary = ", ".join(f"{name} {count}" for name, count in totals.items())
        self.stdout.write(
            self.style.SUCCESS(
                f"done: {summary} ({progress.rate():,.0f} rows/s)" + (" (queued for the workers)" if queue else "")
            )
        )

"""Re-aggregate rollups from raw readings over a time range, for readings that reached the table without an
ingest batch (a bulk load, a restore): the beat refresh only follows batches."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps.aggregates.buckets import DAY
from apps.aggregates.services import rollups_rebuild
from apps.core.progress import Progress, add_progress_argument
from apps.core.timeparams import parse_time_param


class Command(BaseCommand):
    help = "Re-aggregate the hourly and daily rollups of every sensor over [--start, --end), a day at a time."

    def add_arguments(self, parser):
        parser.add_argument("--start", required=True, help="ISO 8601 or YYYYMMDD (UTC).")
        parser.add_argument("--end", required=True, help="ISO 8601 or YYYYMMDD (UTC), exclusive.")
        add_progress_argument(parser)

    def handle(self, *args, start: str, end: str, **options):
        try:
            start_at, end_at = parse_time_param(start), parse_time_param(end)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if end_at <= start_at:
            raise CommandError("--end must be after --start.")
        hours = days = 0
        # A day per transaction, so a long range neither holds locks for long nor starts over when stopped.
        total_days = -(-(end_at - start_at) // DAY)
        low = start_at
        with Progress.for_command(self, options, label="rebuild", unit="days", total=total_days) as progress:
            while low < end_at:
                high = min(low + DAY, end_at)
                written = rollups_rebuild(start=low, end=high)
                hours, days = hours + written[0], days + written[1]
                low = high
                progress.advance()
        self.stdout.write(f"rebuilt {hours} hourly and {days} daily rollup rows from {start_at} to {end_at}")

"""Run now what the daily retention beat runs (readings and rollups), until nothing past retention is left,
and say what went."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from apps.aggregates.retention import retention_plan, retention_purge
from apps.core.progress import Progress, add_progress_argument


class Command(BaseCommand):
    help = (
        "Drop the readings partitions older than READINGS_RETENTION_DAYS (deleting rows only in a partition that"
        " straddles the cutoff) and delete rollups older than ROLLUPS_RETENTION_DAYS, as the daily beat does."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Say what would go, change nothing.")
        add_progress_argument(parser)

    def handle(self, *args, dry_run: bool, **options):
        plan = retention_plan()
        self.stdout.write(f"readings before {plan.readings_before.isoformat()} go", ending="")
        if plan.held_back:
            self.stdout.write(f" (retention alone would allow {plan.readings_limit.isoformat()}: {plan.held_back})")
        else:
            self.stdout.write("")
        self.stdout.write(f"rollups before {plan.rollups_before.isoformat()} go")
        if dry_run:
            if plan.hypertable:
                self.stdout.write("TimescaleDB: drop_chunks would drop the chunks older than the retention")
            for partition in plan.drop:
                self.stdout.write(f"would drop partition {partition.name}")
            for partition in plan.trim:
                self.stdout.write(f"would delete the rows before the cutoff in partition {partition.name}")
            return
        totals = {"readings": 0, "readings_deleted": 0, "hour_rollups": 0, "day_rollups": 0, "chunks_dropped": 0}
        dropped: list[str] = []
        runs = 0
        # Counted in readings removed; the total is unknown (a dropped partition's rows are only estimated).
        with Progress.for_command(self, options, label="retention", unit="readings") as progress:
            while True:
                outcome = retention_purge()
                runs += 1
                if outcome.skipped:
                    progress.close()
                    self.stdout.write("another purge is running; try again when it is done")
                    return
                dropped += outcome.partitions_dropped
                for key in totals:
                    totals[key] += getattr(outcome, key)
                progress.advance(outcome.readings)
                progressed = (
                    outcome.partitions_dropped or outcome.readings or outcome.hour_rollups or outcome.day_rollups
                )
                if not outcome.more:
                    break
                if not progressed:
                    progress.close()
                    self.stdout.write(
                        "a partition could not be detached yet (queries are still reading it); run again later"
                    )
                    break
        for name in dropped:
            self.stdout.write(f"dropped partition {name}")
        self.stdout.write(
            f"readings removed: {totals['readings']} ({totals['readings_deleted']} deleted row by row, the rest in"
            f" {len(dropped)} dropped partitions, as estimated by PostgreSQL); TimescaleDB chunks dropped:"
            f" {totals['chunks_dropped']}; hourly rollups deleted: {totals['hour_rollups']}; daily rollups deleted:"
            f" {totals['day_rollups']}; in {runs} run(s)"
        )

"""Long commands draw a progress line on a terminal and nothing in a pipe; their summary and counts are the same
either way."""

from __future__ import annotations

import io
import os

import pytest
from django.core.management import call_command

from apps.core.progress import Progress
from apps.ingest.models import Reading

HEADER = b"sensor,ts,value\n"


class Terminal:
    """A pseudo-terminal: the command writes to its slave end as it would to a real terminal."""

    def __init__(self):
        self.master, slave = os.openpty()
        self.stream = os.fdopen(slave, "w")

    def output(self) -> str:
        self.stream.close()
        chunks = []
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # Linux answers EIO once the slave is closed and everything is read.
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(self.master)
        return b"".join(chunks).decode()


def _csv(tmp_path, count: int):
    path = tmp_path / "readings.csv"
    lines = (b"env-001/temperature,2026-01-01T%02d:%02d:00Z,20.5\n" % divmod(n, 60) for n in range(count))
    path.write_bytes(HEADER + b"".join(lines))
    return path


@pytest.mark.django_db
def test_import_on_a_terminal_draws_progress_and_counts_right(world, tmp_path):
    terminal, out = Terminal(), io.StringIO()

    call_command("import_readings", str(_csv(tmp_path, 30)), "--chunk-size", "10", stdout=out, stderr=terminal.stream)

    drawn = terminal.output()
    assert "\rimport: 30 rows" in drawn
    assert "rows/s" in drawn
    assert "done: rows 30, stored 30, duplicates 0" in out.getvalue()
    assert Reading.objects.count() == 30


@pytest.mark.django_db
def test_import_in_a_pipe_draws_nothing_but_the_summary(world, tmp_path):
    out, err = io.StringIO(), io.StringIO()

    call_command("import_readings", str(_csv(tmp_path, 30)), "--chunk-size", "10", stdout=out, stderr=err)

    assert err.getvalue() == ""
    assert "\r" not in out.getvalue()
    assert "done: rows 30, stored 30" in out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize("quiet", [["--no-progress"], ["--verbosity", "0"]])
def test_import_on_a_terminal_is_quiet_when_asked(world, tmp_path, quiet):
    terminal, out = Terminal(), io.StringIO()

    call_command("import_readings", str(_csv(tmp_path, 5)), *quiet, stdout=out, stderr=terminal.stream)

    assert terminal.output() == ""
    assert "done: rows 5, stored 5" in out.getvalue()


@pytest.mark.django_db
def test_rebuild_on_a_terminal_counts_days_to_the_total(world):
    terminal, out = Terminal(), io.StringIO()

    call_command("rebuild_rollups", "--start", "20260120", "--end", "20260124", stdout=out, stderr=terminal.stream)

    drawn = terminal.output()
    assert "\rrebuild: 1/4 days" in drawn
    assert "\rrebuild: 4/4 days" in drawn
    assert "rebuilt 0 hourly and 0 daily rollup rows" in out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("command", "drawn", "summary"),
    [
        ("seed_demo", "\rseed: 7/7 steps", "Demo plant: created"),
        ("apply_retention", "\rretention: 0 readings", "readings removed: 0"),
    ],
)
def test_a_command_on_a_terminal_draws_progress_and_in_a_pipe_does_not(db, command, drawn, summary):
    terminal, out = Terminal(), io.StringIO()
    call_command(command, stdout=out, stderr=terminal.stream)
    assert drawn in terminal.output()
    assert summary in out.getvalue()

    err = io.StringIO()
    call_command(command, stdout=io.StringIO(), stderr=err)
    assert err.getvalue() == ""


def test_the_line_says_the_time_left_from_the_rate_so_far():
    terminal = Terminal()
    progress = Progress(terminal.stream, label="rebuild", unit="days", total=10)
    progress.done = 4
    started = progress._started

    assert progress.line(now=started + 8) == "rebuild: 4/10 days, 0.5 days/s, 0:12 left"
    terminal.output()


def test_a_redraw_pads_over_the_end_of_a_longer_line():
    terminal = Terminal()
    progress = Progress(terminal.stream, label="x", unit="rows", min_interval_s=0)
    progress._draw(progress._started + 1)
    progress.label = "longer label"
    progress._draw(progress._started + 1)
    progress.label = "x"
    progress._draw(progress._started + 1)

    last = terminal.output().split("\r")[-1]
    assert last == "x: 0 rows, 0.0 rows/s".ljust(len("longer label: 0 rows, 0.0 rows/s"))


def test_a_fast_loop_is_drawn_once_per_interval_and_once_more_at_the_end():
    terminal = Terminal()
    # An interval no test run reaches: only the first update is drawn, then the final one on close.
    with Progress(terminal.stream, label="import", unit="rows", min_interval_s=3600) as progress:
        for _ in range(1000):
            progress.advance()

    drawn = terminal.output()
    assert drawn.count("\rimport") == 2
    assert "\rimport: 1 rows" in drawn
    assert "\rimport: 1,000 rows" in drawn

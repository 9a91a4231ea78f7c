"""Progress of a long management command: a line updated in place on a terminal, nothing in scripts.

On a terminal the line shows what is done (and of how much, when that is known), the rate and, with a total,
the time left; it is rewritten at most a few times a second so a fast loop does not spend its time drawing.
When the stream is not a terminal (a pipe, a log file, cron), with ``--no-progress`` or with ``--verbosity 0``
nothing is drawn, so logs hold no carriage returns. The summary line the command writes at the end is its own
business and appears either way.

A small helper of our own rather than tqdm: what the commands need is a counter, a rate and a time left, and
tqdm's own rule for when to stay quiet (``disable=None``) looks only at its own stream, not at the command's
``--no-progress`` and verbosity, so both would need wrapping anyway.
"""

from __future__ import annotations

import time
from typing import TextIO

# Redrawing more often than this is flicker nobody can read.
MIN_INTERVAL_S = 0.25


def add_progress_argument(parser) -> None:
    parser.add_argument(
        "--no-progress", action="store_true", help="draw no progress line, even on a terminal (it never is in a pipe)"
    )


def _is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Progress:
    """Counts units of work and, when enabled, redraws one line on ``stream``."""

    def __init__(
        self,
        stream: TextIO,
        *,
        label: str,
        unit: str = "rows",
        total: int | None = None,
        enabled: bool = True,
        min_interval_s: float = MIN_INTERVAL_S,
    ):
        self.stream = stream
        self.label = label
        self.unit = unit
        self.total = total
        self.done = 0
        self.enabled = enabled and _is_terminal(stream)
        self.min_interval_s = min_interval_s
        self._started = time.monotonic()
        self._drawn_at: float | None = None
        self._width = 0

    @classmethod
    def for_command(cls, command, options: dict, **kwargs) -> Progress:
        """The progress of a Django command, on its stderr so stdout stays the command's output."""
        enabled = not options.get("no_progress") and int(options.get("verbosity", 1)) > 0
        return cls(getattr(command.stderr, "_out", command.stderr), enabled=enabled, **kwargs)

    def advance(self, count: int = 1) -> None:
        self.done += count
        if not self.enabled:
            return
        now = time.monotonic()
        finished = self.total is not None and self.done >= self.total
        if self._drawn_at is None or now - self._drawn_at >= self.min_interval_s or finished:
            self._draw(now)

    def rate(self, now: float | None = None) -> float:
        """Units per second since the start, for the line and for the command's summary."""
        elapsed = max((now if now is not None else time.monotonic()) - self._started, 1e-6)
        return self.done / elapsed

    def line(self, now: float | None = None) -> str:
        rate = self.rate(now)
        done = f"{self.done:,}" if self.total is None else f"{self.done:,}/{self.total:,}"
        text = f"{self.label}: {done} {self.unit}, {rate:,.1f} {self.unit}/s"
        if self.total is not None and self.done < self.total:
            left = (self.total - self.done) / rate if rate > 0 else None
            text += f", {_duration(left)} left" if left is not None else ", time left unknown"
        return text

    def _draw(self, now: float) -> None:
        text = self.line(now)
        # Pad over the end of a longer previous line, then go back to the start of the line.
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)
        self._drawn_at = now

    def close(self) -> None:
        """End the progress line, so what is written next starts on a line of its own."""
        if self.enabled and self._drawn_at is not None:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
            self._drawn_at = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"

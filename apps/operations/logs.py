"""How log lines look, and which are routine: LOGGING in settings uses both.

LOG_FORMAT=text (the default with DEBUG) gives people one line per event; json (the default otherwise) gives
log shippers one object per line (python-json-logger). Celery logs a line for every task received and every
task succeeded, and the beat one for every task it sends, all at INFO: on a busy system that is several lines a
second saying that things work. They are logged at DEBUG here, so INFO shows what needs reading.
"""

from __future__ import annotations

import logging


class TextFormatter(logging.Formatter):
    """`2026-02-12 16:00:00.123 INFO    apps.ingest.pipeline [3f2a...] message`: time, level, logger, the
    request id when the line belongs to a request or a task it queued, the message; a traceback follows on
    lines of its own."""

    def __init__(self) -> None:
        super().__init__(
            fmt="%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s %(request_tag)s%(message)s",
            datefmt="%Y-%m-%d %H:%M:%S",
        )

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        record.request_tag = f"[{request_id}] " if request_id else ""
        return super().format(record)


class RoutineTaskLinesAtDebug(logging.Filter):
    """On Celery's loggers: its per-task "received" and "succeeded" lines and the beat's "Sending due task"
    become DEBUG records, shown only where that logger's DEBUG is enabled (`--loglevel DEBUG`). Failures,
    retries and everything else keep their level."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        from celery.app.trace import LOG_RECEIVED, LOG_SUCCESS

        self.routine = {LOG_RECEIVED, LOG_SUCCESS, "Scheduler: Sending due task %s (%s)"}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not isinstance(record.msg, str) or record.msg not in self.routine:
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)

"""Running one call from several threads at the same moment, for tests of races (each thread has its own
database connection, as concurrent requests or workers would)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def at_once(call: Callable[[], Any], times: int, *, timeout: float = 30.0) -> list[Any]:
    """What `call` returned, or the exception it raised, in each of `times` threads released together."""
    start = threading.Barrier(times)
    outcomes: list[Any] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            start.wait()
            outcome = call()
        except Exception as exc:  # the race's loser: part of the outcome
            outcome = exc
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return outcomes

"""Running one thing in several threads at the same moment, for tests of races the database must settle."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connection

T = TypeVar("T")


def at_once(function: Callable[[], T], *, threads: int = 4, timeout: float = 30) -> list[T]:
    """The results of `function` called in `threads` threads released together (a barrier), in the order they
    finished. Each thread has its own database connection, closed when it is done; a test using this must be
    transactional, for the threads to see its rows."""
    start = threading.Barrier(threads)
    results: list[T] = []

    def run() -> None:
        try:
            start.wait()
            results.append(function())
        finally:
            connection.close()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=timeout)
    return results

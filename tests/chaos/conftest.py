"""The chaos suite's stack (one per module: starting it takes most of the time) and its counts, printed in the
terminal summary of every run, so `make test` shows them whether or not output is captured."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.chaos.stack import Stack, start_stack


@dataclass
class Counts:
    name: str
    sent: int
    stored: int
    distinct: int
    counted_stored: int  # the batches' own stored counts, summed
    retried_requests: int = 0

    @property
    def lost(self) -> int:
        return self.sent - self.distinct

    @property
    def doubled(self) -> int:
        return (self.stored - self.distinct) + max(self.counted_stored - self.distinct, 0)

    def line(self) -> str:
        return (
            f"{self.name}: sent {self.sent}, stored {self.stored}, lost {self.lost}, doubled {self.doubled} "
            f"(batches counted {self.counted_stored} stored; {self.retried_requests} HTTP requests retried)"
        )


RESULTS: list[Counts] = []


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Stack:
    running = start_stack(tmp_path_factory.mktemp("chaos"))
    yield running
    running.close()


@pytest.fixture
def record_counts(record_property):
    def record(counts: Counts) -> Counts:
        RESULTS.append(counts)
        record_property("chaos_counts", counts.line())
        print(counts.line())
        return counts

    return record


def pytest_terminal_summary(terminalreporter):
    if RESULTS:
        terminalreporter.section("chaos suite: every reading counted")
        for counts in RESULTS:
            terminalreporter.write_line(counts.line())

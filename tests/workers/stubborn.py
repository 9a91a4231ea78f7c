"""A task for the time-limit tests, imported by their worker (`--include`): the real ingest task's body behind
a handler that swallows the soft time limit, as code the soft limit cannot stop (a C extension, a handler that
catches too much) would, so the run is killed at the hard limit."""

import time

from celery.exceptions import SoftTimeLimitExceeded

from apps.ingest.pipeline import batch_process
from workers.celery import app
from workers.tasks.ingest import IngestTask

NAME = "tests.process_batch_past_the_soft_limit"


@app.task(base=IngestTask, name=NAME)
def process_batch_past_the_soft_limit(batch_id: str) -> None:
    try:
        batch_process(batch_id=batch_id)
    except SoftTimeLimitExceeded:
        time.sleep(3600)

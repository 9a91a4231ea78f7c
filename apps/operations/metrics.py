"""The product's Prometheus metrics. One module, so every name is defined once.

Processes (gunicorn workers, Celery pool processes, the MQTT bridge) each count in their own memory; with
PROMETHEUS_MULTIPROC_DIR set, prometheus-client writes those counts to files there and the /metrics view adds
them up (apps/operations/views.py). Set the directory for every process of one deployment, and empty it when
the deployment starts.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

READINGS_RECEIVED = Counter(
    "telemetry_readings_received_total", "Readings accepted by the API or the MQTT bridge, before storage", ["source"]
)
READINGS_STORED = Counter("telemetry_readings_stored_total", "Readings written to the readings table")
READINGS_DUPLICATE = Counter("telemetry_readings_duplicate_total", "Readings dropped as duplicates")
READINGS_REJECTED = Counter("telemetry_readings_rejected_total", "Readings rejected by data-quality checks", ["reason"])
ROLLUP_OVERFLOWS = Counter(
    "telemetry_rollup_overflow_buckets_total",
    "Rollup buckets written with an infinite sum (their readings' sum exceeds float8)",
    ["granularity"],
)
INGEST_BATCH_SECONDS = Histogram(
    "telemetry_ingest_batch_duration_seconds",
    "Time the worker took to store one ingest batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INGEST_BATCH_LATENCY_SECONDS = Histogram(
    "telemetry_ingest_batch_latency_seconds",
    "From the request's arrival to its batch committed",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
TASKS = Counter("telemetry_celery_tasks_total", "Celery tasks finished, by task and outcome", ["task", "outcome"])
TASK_SECONDS = Histogram(
    "telemetry_celery_task_duration_seconds",
    "Run time of Celery tasks",
    ["task"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
DEAD_LETTERS = Counter("telemetry_dead_letters_total", "Dead letters recorded, by source", ["source"])
MQTT_MESSAGES = Counter("telemetry_mqtt_messages_total", "MQTT messages handled by the bridge", ["topic", "outcome"])
MQTT_RECONNECTS = Counter("telemetry_mqtt_reconnects_total", "Times the MQTT bridge reconnected to the broker")
REDIS_FALLBACKS = Counter(
    "telemetry_redis_fallbacks_total",
    "Times a process went on without Redis (throttle let through, cache bump or read skipped, task left for the "
    "requeue beat), by operation",
    ["operation"],
)

# --- for the alerting rules (docker/prometheus/alerts.yml) --------------------------------------------------------
# A timestamp rather than an age: it stays right between scrapes, and the rules compute the age with time().
# "max" over processes: the newest success any process saw.
TASK_LAST_SUCCESS = Gauge(
    "telemetry_celery_task_last_success_timestamp_seconds",
    "When each Celery task last succeeded (Unix time)",
    ["task"],
    multiprocess_mode="max",
)
# Set from the bridge's connect and disconnect callbacks. "mostrecent": the last value any process wrote, so a
# restarted bridge replaces what the one before it left (processes that never connect leave 0 written at
# start, which loses to any later write).
MQTT_CONNECTED = Gauge(
    "telemetry_mqtt_connected",
    "1 while the MQTT bridge is connected to the broker, 0 while it is not",
    multiprocess_mode="mostrecent",
)
# Every source's series exists from the start, so the first dead letter of a source counts as an increase.
for _source in ("task", "mqtt"):
    DEAD_LETTERS.labels(_source)
MQTT_DEAD_LETTERS_SUPPRESSED = Counter(
    "telemetry_mqtt_dead_letters_suppressed_total",
    "MQTT messages refused without a dead letter, past the dead-letter rate limits",
    ["reason"],
)
# The broker's own statistics ($SYS), as the bridge last read them. They count since the broker started, so a
# broker restart takes them back to 0; "mostrecent" reports the last value any bridge process wrote.
MQTT_BROKER_DROPPED = Gauge(
    "telemetry_mqtt_broker_dropped_messages",
    "Messages the MQTT broker dropped since it started, for a full client queue ($SYS/broker/publish/messages/dropped)",
    multiprocess_mode="mostrecent",
)
MQTT_BROKER_STORED_MESSAGES = Gauge(
    "telemetry_mqtt_broker_stored_messages",
    "Messages the MQTT broker holds: queued for clients and retained ($SYS/broker/store/messages/count)",
    multiprocess_mode="mostrecent",
)
MQTT_BROKER_STORED_BYTES = Gauge(
    "telemetry_mqtt_broker_stored_bytes",
    "Payload bytes of the messages the MQTT broker holds ($SYS/broker/store/messages/bytes)",
    multiprocess_mode="mostrecent",
)
MQTT_BROKER_CLIENTS = Gauge(
    "telemetry_mqtt_broker_clients_connected",
    "Clients connected to the MQTT broker ($SYS/broker/clients/connected)",
    multiprocess_mode="mostrecent",
)

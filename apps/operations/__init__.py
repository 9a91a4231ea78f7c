"""Running the service: Prometheus metrics (metrics.py, exposition.py; scrape-time collectors in
collectors.py, task metrics in task_metrics.py), request ids and structured logs (request_id.py, logs.py),
rate limits (throttling.py) and the count of fallbacks while Redis is down (apps/core/redis_outage.py decides them)."""

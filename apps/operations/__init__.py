"""Running the service: Prometheus metrics (metrics.py, exposition.py; scrape-time collectors in
collectors.py, task metrics in task_metrics.py), request ids and structured logs (request_id.py, logs.py),
rate limits (throttling.py) and behaviour while Redis is down (redis_outage.py)."""

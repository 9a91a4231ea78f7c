"""Tasks of the aggregates side; see workers/celery.py for how modules are registered."""

"""Tasks of the alerts side; see workers/celery.py for how modules are registered."""

"""Tasks of the devices side; see workers/celery.py for how modules are registered."""

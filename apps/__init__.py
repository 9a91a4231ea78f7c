"""The Django apps, one per domain, layered: a lower app never imports a higher one (the order and its
named exceptions are in README's "Project layout" and tests/test_layers.py). Each app keeps the same rooms:
models.py (tables), services.py or services/ (every write and its rules), selectors.py (reads), api.py and
urls.py (the HTTP surface), admin.py. Celery tasks are not here but in workers/tasks/, thin, taking ids."""

"""The Celery side: the app and its configuration (celery.py), the base task class with retries, dead letters
and metrics (base.py), and the task modules (tasks/), one per domain. Tasks are thin: they take ids and call
an app's service function. Their names are in apps/core/tasks.py, shared with the apps that queue them."""

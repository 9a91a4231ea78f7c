"""What every app shares and none owns: the error shape (errors.py, handlers.py), the read APIs' input
layer (fields.py, query.py, filters.py, timeparams.py), pagination, body limits and parsers, health checks,
advisory locks (locks.py), outbound HTTP to users' URLs (egress.py), and the name of every Celery task
(tasks.py). It imports no other app."""

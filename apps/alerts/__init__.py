"""Alerts and their lifecycle (the model's methods in models.py), threshold evaluation of stored batches
(services/evaluation.py with the database-free state machine in evaluation.py and its SQL in sql.py),
device-offline alerts (services/offline.py, called by the connectivity sweep) and alert events, whose
fan-out is queued to notifications by task name. Start with models.py, then services/evaluation.py."""

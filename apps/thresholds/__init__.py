"""Thresholds: the default alert bands of a sensor type, and per-sensor mappings that override or switch them
off. `models.py` holds the tables and the band order the database enforces; `services.py` every rule a save
must keep (used by the API, the admin and the demo seeder); `selectors.py` the effective thresholds of
sensors; `severity.py` the one definition of a value's level, in Python and as generated SQL. Evaluation
against them lives in apps/alerts; this app imports only locations, devices, accounts and core."""

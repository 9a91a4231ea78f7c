"""Tasks that failed for good, kept with their arguments (models.py) and replayable from the admin
(services.py)."""

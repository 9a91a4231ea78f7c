"""The operator pages under /ops/ (plant overview, sensor, alerts board, device): server-rendered shells
(views.py, templates) whose data the browser draws from the public API (static/)."""

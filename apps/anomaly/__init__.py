"""Anomaly rules per sensor type or sensor, the streaming detectors (detectors.py, numpy, no database) and
their per-sensor states, loaded and written set-wise (states.py)."""

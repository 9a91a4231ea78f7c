"""Hourly and daily rollups of readings: their refresh (services.py, sums.py, buckets.py, or TimescaleDB's
continuous aggregates in timescale.py), aggregate queries (selectors.py, api.py), exports (exports.py,
formats.py) and retention (retention.py)."""

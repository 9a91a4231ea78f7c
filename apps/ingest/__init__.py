"""Readings in: payload adapters (adapters.py, payload.py) and the HTTP and CSV entry points (api.py,
csv_import.py, services.py, which queue a batch), then the worker side (pipeline.py: resolve, store set-wise,
tell connectivity and queue evaluation). Readings live in day partitions (partitions.py, timescale.py);
selectors.py is how other apps read readings and batches. Start with services.py, then pipeline.py."""

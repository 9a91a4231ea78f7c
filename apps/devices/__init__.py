"""Sensor types, devices and their sensors, and devices' ingest keys (keys.py, authentication.py).
connectivity.py owns whether a device is online, its last seen and its datagram sequence, for every path
that learns of it; services.py creates devices and sensors, rotates keys and keeps OTA reports."""

"""The InfluxDB line protocol write endpoint: parse (lineprotocol.py), map points to devices and sensors
(mapping.py), then hand the readings to ingest like any other batch."""

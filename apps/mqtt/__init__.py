"""Devices over MQTT: the bridge (bridge.py, run by manage.py mqtt_bridge) turns device messages into ingest
batches and device state (handlers.py), checks their envelope and signature (envelope.py, signing.py), keeps
the broker's accounts (broker_accounts.py, mosquitto.py) and publishes commands (publisher.py); Sparkplug B
topics go to apps/sparkplug, and the device simulator lives in apps/demo. Start with topics.py and bridge.py."""

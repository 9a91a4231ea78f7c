"""The demo runs on the MQTT path, so its tests use the MQTT fixtures (tests/mqtt/broker.py)."""

from tests.mqtt.broker import start_bridge

__all__ = ["start_bridge"]

"""Fixtures for tests against the project's Mosquitto (tests/mqtt/broker.py)."""

from tests.mqtt.broker import device_mqtt, start_bridge

__all__ = ["device_mqtt", "start_bridge"]

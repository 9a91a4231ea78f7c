"""Fixtures for tests against the project's Mosquitto (tests/mqtt/broker.py)."""

from tests.mqtt.broker import start_bridge

__all__ = ["start_bridge"]

"""Fixtures for tests against the real Mosquitto (tests/mqtt/broker.py); importing them also moves this test
run onto a topic root of its own."""

from tests.mqtt.broker import device_mqtt, start_bridge, use_private_topic_root

__all__ = ["device_mqtt", "start_bridge"]

use_private_topic_root()

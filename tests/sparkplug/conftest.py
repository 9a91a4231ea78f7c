"""Fixtures for tests against the project's Mosquitto (tests/mqtt/broker.py)."""

from tests.mqtt.broker import broker_accounts, start_bridge

__all__ = ["broker_accounts", "start_bridge"]

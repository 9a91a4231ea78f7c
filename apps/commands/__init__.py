"""Commands to devices: queued (services.py), sent over MQTT by a worker task, acknowledged by the device
(handlers in apps.mqtt), expired after their time to live."""

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class MqttConfig(AppConfig):
    name = "apps.mqtt"
    label = "mqtt"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.devices.models import Device
        from apps.mqtt import signals

        post_save.connect(signals.device_saved, sender=Device, dispatch_uid="mqtt-device-saved")
        post_delete.connect(signals.device_deleted, sender=Device, dispatch_uid="mqtt-device-deleted")

from django.apps import AppConfig


class MqttConfig(AppConfig):
    name = "apps.mqtt"
    label = "mqtt"
    default_auto_field = "django.db.models.BigAutoField"

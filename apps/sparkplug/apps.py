from django.apps import AppConfig


class SparkplugConfig(AppConfig):
    name = "apps.sparkplug"
    label = "sparkplug"
    default_auto_field = "django.db.models.BigAutoField"

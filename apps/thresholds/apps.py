from django.apps import AppConfig


class ThresholdsConfig(AppConfig):
    name = "apps.thresholds"
    label = "thresholds"
    default_auto_field = "django.db.models.BigAutoField"

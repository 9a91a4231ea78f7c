from django.apps import AppConfig


class AnomalyConfig(AppConfig):
    name = "apps.anomaly"
    label = "anomaly"
    default_auto_field = "django.db.models.BigAutoField"

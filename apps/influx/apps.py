from django.apps import AppConfig


class InfluxConfig(AppConfig):
    """The InfluxDB v2 write API: line protocol in, readings through the ingest pipeline."""

    name = "apps.influx"
    label = "influx"
    default_auto_field = "django.db.models.BigAutoField"

from django.apps import AppConfig


class IngestConfig(AppConfig):
    name = "apps.ingest"
    label = "ingest"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save, pre_delete

        from apps.devices.models import Device, Sensor, SensorType
        from apps.ingest.metrics import IngestBacklogCollector
        from apps.ingest.resolution import configuration_changed
        from apps.ingest.sensor_deletion import sensor_pre_delete
        from apps.operations.collectors import register

        register(IngestBacklogCollector())

        for model in (Device, Sensor, SensorType):
            post_save.connect(configuration_changed, sender=model, dispatch_uid=f"ingest-cache-{model.__name__}-save")
            post_delete.connect(
                configuration_changed, sender=model, dispatch_uid=f"ingest-cache-{model.__name__}-delete"
            )
        # Readings have no foreign key to cascade them: apps/ingest/sensor_deletion.py.
        pre_delete.connect(sensor_pre_delete, sender=Sensor, dispatch_uid="ingest-readings-of-deleted-sensor")

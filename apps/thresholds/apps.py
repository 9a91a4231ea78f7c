from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class ThresholdsConfig(AppConfig):
    name = "apps.thresholds"
    label = "thresholds"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.thresholds.models import SensorThresholdMapping, Threshold
        from apps.thresholds.selectors import THRESHOLDS_CACHE

        # Evaluation caches the sensors' effective thresholds per process; any change of a threshold or a
        # mapping drops them all.
        for model in (Threshold, SensorThresholdMapping):
            post_save.connect(
                THRESHOLDS_CACHE.changed, sender=model, dispatch_uid=f"thresholds-cache-{model.__name__}-save"
            )
            post_delete.connect(
                THRESHOLDS_CACHE.changed, sender=model, dispatch_uid=f"thresholds-cache-{model.__name__}-delete"
            )

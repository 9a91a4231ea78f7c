from django.apps import AppConfig


class AggregatesConfig(AppConfig):
    name = "apps.aggregates"
    label = "aggregates"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.aggregates.metrics import RollupWatermarkCollector
        from apps.operations.collectors import register

        register(RollupWatermarkCollector())

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "apps.notifications"
    label = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.notifications.metrics import NotificationsCollector
        from apps.operations.collectors import register

        register(NotificationsCollector())

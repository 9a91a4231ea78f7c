from django.apps import AppConfig


class DeadlettersConfig(AppConfig):
    name = "apps.deadletters"
    label = "deadletters"
    default_auto_field = "django.db.models.BigAutoField"

from django.apps import AppConfig


class CommandsConfig(AppConfig):
    name = "apps.commands"
    label = "commands"
    default_auto_field = "django.db.models.BigAutoField"

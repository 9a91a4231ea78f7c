from django.apps import AppConfig


class SparkplugConfig(AppConfig):
    name = "apps.sparkplug"
    label = "sparkplug"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.commands.services import COMMAND_CHECKS
        from apps.sparkplug.commands import command_check

        if command_check not in COMMAND_CHECKS:
            COMMAND_CHECKS.append(command_check)

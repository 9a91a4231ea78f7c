from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from apps.accounts.group_permissions import sync_role_permissions

        # Permissions are created per app on post_migrate; the receiver acts on the last app's signal.
        post_migrate.connect(sync_role_permissions, dispatch_uid="accounts-sync-role-permissions")

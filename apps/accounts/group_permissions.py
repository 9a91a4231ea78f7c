"""Django admin permissions of the role groups, kept in step with the API's roles after every migrate.

The API checks roles itself (apps/accounts/permissions.py); the admin checks model permissions. So that an
operator or admin can do in the admin what the API lets them do, each group holds:
- ingest: nothing (gateways are not staff and have no business in the admin);
- viewer: view every model of the product;
- operator: that, plus managing what the API lets operators manage: thresholds and mappings, anomaly rules,
  subscriptions and maintenance windows (add, change, delete), and the lifecycle of alerts and device
  commands (change only: their history is never deleted by an operator);
- admin: every permission of the product's apps and of users and groups.

Admin actions name the permission they need (`allowed_permissions`); with these groups, key rotation,
dead-letter and batch replays and django-celery-beat's task actions are the admins'.
"""

from __future__ import annotations

from django.apps import AppConfig, apps
from django.contrib.auth.models import Group, Permission
from django.db.models import Q

PRODUCT_APPS = (
    "locations", "devices", "thresholds", "anomaly", "ingest", "deadletters", "alerts", "notifications", "aggregates",
    "commands", "sparkplug", "django_celery_beat",
)  # fmt: skip
MANAGE = ("add", "change", "delete")
# app label -> model -> the permissions operators hold beyond viewing
OPERATOR_MANAGES = {
    "thresholds": {"threshold": MANAGE, "sensorthresholdmapping": MANAGE},
    "anomaly": {"anomalyrule": MANAGE},
    "notifications": {"subscription": MANAGE, "maintenancewindow": MANAGE},
    "alerts": {"alert": ("change",)},
    "commands": {"command": ("change",)},
}


def _last_app_with_models() -> AppConfig:
    # The order emit_post_migrate_signal sends in.
    return [config for config in apps.get_app_configs() if config.models_module is not None][-1]


def _operator_filter() -> Q:
    query = Q(pk__in=[])
    for app_label, models in OPERATOR_MANAGES.items():
        for model, actions in models.items():
            codenames = [f"{action}_{model}" for action in actions]
            query |= Q(content_type__app_label=app_label, content_type__model=model, codename__in=codenames)
    return query


def sync_role_permissions(app_config: AppConfig | None = None, **kwargs) -> None:
    """post_migrate receiver: (re)set the permissions of the role groups. Django sends post_migrate once per
    app, and creates each app's permissions on its own signal, so the groups are set once, on the last app's
    (called directly, it always runs)."""
    if app_config is not None and app_config is not _last_app_with_models():
        return
    in_product = Permission.objects.filter(content_type__app_label__in=PRODUCT_APPS)
    view = in_product.filter(codename__startswith="view_")
    manage = in_product.filter(_operator_filter())
    everything = Permission.objects.filter(
        Q(content_type__app_label__in=PRODUCT_APPS) | Q(content_type__app_label="auth")
    )
    groups = (
        ("ingest", Permission.objects.none()),
        ("viewer", view),
        ("operator", view | manage),
        ("admin", everything),
    )
    for name, permissions in groups:
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(permissions.distinct())

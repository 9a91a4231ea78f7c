"""Django admin permissions of the role groups, kept in step with the API's roles after every migrate.

The API checks roles itself (apps/accounts/permissions.py); the admin checks model permissions. So that an
operator or admin can do in the admin what the API lets them do, each group holds:
- viewer: view every model of the product;
- operator: that, plus managing what the API lets operators manage (thresholds and mappings, anomaly rules,
  subscriptions and maintenance windows, alerts, device commands);
- admin: every permission of the product's apps and of users and groups.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

PRODUCT_APPS = (
    "locations", "devices", "thresholds", "anomaly", "ingest", "deadletters", "alerts", "notifications", "aggregates",
    "commands", "django_celery_beat",
)  # fmt: skip
OPERATOR_MANAGES = {
    "thresholds": ("threshold", "sensorthresholdmapping"),
    "anomaly": ("anomalyrule",),
    "notifications": ("subscription",),
    "alerts": ("alert", "maintenancewindow"),
    "commands": ("command",),
}


def _operator_filter() -> Q:
    query = Q(pk__in=[])
    for app_label, models in OPERATOR_MANAGES.items():
        query |= Q(content_type__app_label=app_label, content_type__model__in=models)
    return query


def sync_role_permissions(**kwargs) -> None:
    """post_migrate receiver: (re)set the permissions of the viewer, operator and admin groups."""
    in_product = Permission.objects.filter(content_type__app_label__in=PRODUCT_APPS)
    view = in_product.filter(codename__startswith="view_")
    manage = in_product.filter(_operator_filter())
    everything = Permission.objects.filter(
        Q(content_type__app_label__in=PRODUCT_APPS) | Q(content_type__app_label="auth")
    )
    for name, permissions in (("viewer", view), ("operator", view | manage), ("admin", everything)):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(permissions.distinct())

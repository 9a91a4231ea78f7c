"""Admins of other packages that the product re-registers so that every admin action names who may run it.

django-celery-beat's periodic task admin offers its actions to anyone who may view the list, and operators
view periodic tasks (to see when a job last ran). Enabling, disabling and running tasks changes what the
whole plant does, so here they need the change permission, which only admins hold
(apps/accounts/group_permissions.py). tests/accounts/test_admin_actions.py checks every action of every admin.
"""

from __future__ import annotations

from django.contrib import admin
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import PeriodicTask

admin.site.unregister(PeriodicTask)


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(beat_admin.PeriodicTaskAdmin):
    @admin.action(description="Enable selected tasks", permissions=["change"])
    def enable_tasks(self, request, queryset):
        return super().enable_tasks(request, queryset)

    @admin.action(description="Disable selected tasks", permissions=["change"])
    def disable_tasks(self, request, queryset):
        return super().disable_tasks(request, queryset)

    @admin.action(description="Toggle activity of selected tasks", permissions=["change"])
    def toggle_tasks(self, request, queryset):
        return super().toggle_tasks(request, queryset)

    @admin.action(description="Run selected tasks", permissions=["change"])
    def run_tasks(self, request, queryset):
        return super().run_tasks(request, queryset)

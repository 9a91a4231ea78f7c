from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse

from apps.alerts.models import Alert, AlertEvent, ThresholdState
from apps.alerts.services import alert_acknowledge, alert_resolve
from apps.core.errors import ApplicationError


class AlertEventInline(admin.TabularInline):
    model = AlertEvent
    fields = ["at", "kind", "severity", "value", "user", "comment", "created_at", "fanned_out_at"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ["at", "id"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")


class LifecycleForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), required=False)


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "state",
        "severity",
        "kind",
        "sensor",
        "device",
        "location",
        "value",
        "peak_value",
        "opened_at",
        "acknowledged_by",
        "resolved_at",
    ]
    list_filter = [
        "state",
        "severity",
        "kind",
        "resolution",
        "sensor_type",
        ("resolved_at", admin.EmptyFieldListFilter),
    ]
    list_select_related = ["sensor", "device", "location", "acknowledged_by"]
    search_fields = ["sensor__key", "device__device_id", "location__full_path", "resolution_reason"]
    date_hierarchy = "opened_at"
    readonly_fields = [field.name for field in Alert._meta.fields]
    inlines = [AlertEventInline]
    actions = ["acknowledge", "resolve"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # The lifecycle moves only through the actions (each records an event), never by editing fields.
        return False

    def has_lifecycle_permission(self, request) -> bool:
        """Who may acknowledge and resolve: holders of the change permission (operators and admins)."""
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def _lifecycle(self, request, queryset, *, title: str, label: str, required: bool, apply):
        """An intermediate page asking for a comment or reason, then the lifecycle service per alert."""
        form = LifecycleForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid() and (form.cleaned_data["text"].strip() or not required):
            done, refused = 0, []
            for alert in queryset:
                try:
                    apply(alert, form.cleaned_data["text"].strip())
                    done += 1
                except ApplicationError as exc:
                    refused.append(f"#{alert.pk}: {exc.message}")
            self.message_user(request, f"{title}: {done} alert(s).", messages.SUCCESS)
            if refused:
                self.message_user(request, "Not changed: " + "; ".join(refused), messages.WARNING)
            return None
        if form.is_bound:
            form.add_error("text", f"Give a {label}.")
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "label": label,
            "form": form,
            "alerts": queryset,
            "action": request.POST.get("action"),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/alerts/alert/lifecycle.html", context)

    @admin.action(description="Acknowledge the selected alerts", permissions=["lifecycle"])
    def acknowledge(self, request, queryset):
        return self._lifecycle(
            request,
            queryset,
            title="Acknowledge alerts",
            label="comment",
            required=False,
            apply=lambda alert, text: alert_acknowledge(alert_id=alert.pk, user=request.user, comment=text),
        )

    @admin.action(description="Resolve the selected alerts (with a reason)", permissions=["lifecycle"])
    def resolve(self, request, queryset):
        return self._lifecycle(
            request,
            queryset,
            title="Resolve alerts",
            label="reason",
            required=True,
            apply=lambda alert, text: alert_resolve(alert_id=alert.pk, user=request.user, reason=text),
        )


@admin.register(ThresholdState)
class ThresholdStateAdmin(admin.ModelAdmin):
    """Where each sensor stands against each threshold: for staff wondering why an alert did or did not open."""

    list_display = ["sensor", "threshold", "level", "breach_started_at", "alert", "last_ts", "last_value"]
    list_filter = ["level"]
    list_select_related = ["sensor", "threshold__sensor_type", "alert"]
    search_fields = ["sensor__key"]
    readonly_fields = [field.name for field in ThresholdState._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

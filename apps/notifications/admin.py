from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from apps.alerts.admin import AlertAdmin
from apps.alerts.models import Alert
from apps.core.errors import ApplicationError
from apps.notifications.api import ChannelSerializer
from apps.notifications.models import MaintenanceWindow, Notification, Subscription
from apps.notifications.services import (
    maintenance_window_errors,
    maintenance_window_save,
    notification_retry,
    subscription_rotate_secret,
    subscription_save,
)


class SubscriptionForm(forms.ModelForm):
    class Meta:
        model = Subscription
        fields = [
            "name",
            "user",
            "contact",
            "enabled",
            "location",
            "sensor_type",
            "min_severity",
            "channels",
            "notify_on_resolve",
            "notify_on_acknowledge",
            "renotify_minutes",
            "quiet_hours_start",
            "quiet_hours_end",
            "time_zone",
            "quiet_hours_bypass_critical",
            "storm_limit",
            "storm_window_s",
        ]
        help_texts = {
            "channels": 'A JSON list, e.g. [{"type": "email", "target": "ops@example.com"}, '
            '{"type": "webhook", "target": "https://example.com/hook"}, {"type": "sms", "target": "+491701234567"}].',
        }

    def clean_channels(self):
        channels = self.cleaned_data.get("channels")
        serializer = ChannelSerializer(data=channels if isinstance(channels, list) else None, many=True)
        if not isinstance(channels, list) or not channels:
            raise forms.ValidationError("Give a list of at least one channel.")
        if not serializer.is_valid():
            errors = serializer.errors
            by_index = errors.items() if isinstance(errors, dict) else enumerate(errors)
            problems = [
                f"channel {int(index) + 1}: "
                + "; ".join(f"{field}: {' '.join(map(str, messages))}" for field, messages in item.items())
                for index, item in by_index
                if item
            ]
            raise forms.ValidationError(problems)
        user = self.cleaned_data.get("user")
        cleaned = []
        for channel in serializer.validated_data:
            if channel["type"] == "email" and not channel["target"]:
                if user is None or not user.email:
                    raise forms.ValidationError("An email channel needs a target address (or a user with an email).")
                channel["target"] = user.email
            cleaned.append({"type": channel["type"], "target": channel["target"]})
        return cleaned


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    form = SubscriptionForm
    list_display = ["name", "user", "contact", "location", "sensor_type", "min_severity", "channel_list", "enabled"]
    list_filter = ["enabled", "min_severity", "sensor_type"]
    list_select_related = ["user", "location", "sensor_type"]
    search_fields = ["name", "contact", "user__username"]
    autocomplete_fields = ["location", "sensor_type"]
    readonly_fields = ["has_secret", "created_by", "created_at", "updated_at"]
    actions = ["rotate_secret"]
    fieldsets = [
        (None, {"fields": ["name", "user", "contact", "enabled"]}),
        ("Scope (empty: everything)", {"fields": ["location", "sensor_type", "min_severity", "include_anomalies"]}),
        ("Channels", {"fields": ["channels", "has_secret"]}),
        ("What and when", {"fields": ["notify_on_resolve", "notify_on_acknowledge", "renotify_minutes"]}),
        (
            "Quiet hours",
            {"fields": ["quiet_hours_start", "quiet_hours_end", "time_zone", "quiet_hours_bypass_critical"]},
        ),
        ("Storm control (empty: the defaults)", {"fields": ["storm_limit", "storm_window_s"]}),
        ("Record", {"fields": ["created_by", "created_at", "updated_at"]}),
    ]

    @admin.display(description="channels")
    def channel_list(self, subscription: Subscription) -> str:
        return ", ".join(f"{c.get('type')}: {c.get('target')}" for c in subscription.channels or [])

    @admin.display(boolean=True, description="webhook secret set")
    def has_secret(self, subscription: Subscription) -> bool:
        return bool(subscription.secret)

    def save_model(self, request, obj: Subscription, form, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        _, shown = subscription_save(subscription=obj)
        if shown:
            self.message_user(
                request,
                format_html(
                    "Webhook secret for {}: <code>{}</code> (shown only this once: store it now).", obj.name, shown
                ),
                messages.WARNING,
            )

    @admin.action(description="Issue new webhook secrets", permissions=["change"])
    def rotate_secret(self, request, queryset) -> None:
        rotated = [(s.name, subscription_rotate_secret(subscription=s)) for s in queryset]
        self.message_user(
            request,
            format_html(
                "New webhook secrets (shown only this once; the old ones no longer verify):<br>{}",
                format_html_join("", "{}: <code>{}</code><br>", rotated),
            ),
            messages.WARNING,
        )


class NotificationInline(admin.TabularInline):
    model = Notification
    fk_name = "alert"
    fields = ["created_at", "event", "subscription", "channel", "target", "status", "attempts", "last_error", "sent_at"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ["created_at", "id"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("event", "subscription")


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "created_at",
        "kind",
        "alert",
        "subscription",
        "channel",
        "target",
        "status",
        "attempts",
        "sent_at",
    ]
    list_filter = ["status", "channel", "kind"]
    list_select_related = ["subscription", "alert"]
    search_fields = ["target", "last_error", "subscription__name"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Notification._meta.fields]
    actions = ["retry"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_retry_permission(self, request) -> bool:
        # Deliveries are the system's record, never edited; who manages subscriptions may send them again.
        return request.user.has_perm("notifications.change_subscription")

    @admin.action(description="Try the selected failed notifications again", permissions=["retry"])
    def retry(self, request, queryset) -> None:
        retried = 0
        for notification in queryset:
            try:
                notification_retry(notification=notification)
                retried += 1
            except ApplicationError:
                pass
        self.message_user(request, f"Queued {retried} failed notification(s) again.", messages.SUCCESS)


class MaintenanceWindowForm(forms.ModelForm):
    class Meta:
        model = MaintenanceWindow
        fields = ["name", "location", "device", "starts_at", "ends_at", "reason"]

    def clean(self):
        cleaned = super().clean()
        # The service's rules, shown as field errors instead of failing on save.
        window = MaintenanceWindow(**{field: cleaned.get(field) for field in ("location", "device")})
        window.starts_at, window.ends_at = cleaned.get("starts_at"), cleaned.get("ends_at")
        for field, problems in maintenance_window_errors(window).items():
            for problem in problems:
                self.add_error(field if field in self.fields else None, problem)
        return cleaned


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(admin.ModelAdmin):
    form = MaintenanceWindowForm
    list_display = ["name", "location", "device", "starts_at", "ends_at", "created_by"]
    list_filter = [("ends_at", admin.DateFieldListFilter)]
    list_select_related = ["location", "device", "created_by"]
    search_fields = ["name", "reason", "device__device_id", "location__full_path"]
    autocomplete_fields = ["location", "device"]
    readonly_fields = ["created_by", "created_at"]

    def save_model(self, request, obj: MaintenanceWindow, form, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        maintenance_window_save(window=obj)


# The alert page gains its deliveries here, so the import runs notifications -> alerts like the models do.
admin.site.unregister(Alert)


@admin.register(Alert)
class AlertWithNotificationsAdmin(AlertAdmin):
    inlines = [*AlertAdmin.inlines, NotificationInline]

from django.contrib import admin, messages

from apps.sparkplug.models import Endpoint
from apps.sparkplug.services import endpoint_accept


class WaitingFilter(admin.SimpleListFilter):
    title = "waiting for acceptance"
    parameter_name = "waiting"

    def lookups(self, request, model_admin):
        return [("yes", "waiting"), ("no", "accepted")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(device__isnull=self.value() == "yes")
        return queryset


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    """Sparkplug edge nodes and devices as their births described them. With SPARKPLUG_AUTO_PROVISION off, a new
    one waits here (no device) until accepted; its unmapped metrics say which sensor types or aliases to add."""

    list_display = ["__str__", "device", "unmapped", "born_at", "bd_seq", "last_seq"]
    list_filter = [WaitingFilter, "group"]
    search_fields = ["group", "edge_node", "device_name"]
    readonly_fields = [field.name for field in Endpoint._meta.fields]
    actions = ["accept"]

    @admin.display(description="unmapped metrics")
    def unmapped(self, obj: Endpoint) -> str:
        return ", ".join(obj.unmapped_metrics)

    # Accepting creates devices and sensors, so it takes the permission to add devices (admins), as the API's
    # accept does.
    def has_accept_permission(self, request) -> bool:
        return request.user.has_perm("devices.add_device")

    @admin.action(description="Accept: create their devices and sensors", permissions=["accept"])
    def accept(self, request, queryset):
        accepted = 0
        for endpoint in queryset.filter(device__isnull=True):
            endpoint_accept(endpoint=endpoint)
            accepted += 1
        self.message_user(request, f"{accepted} accepted.", messages.SUCCESS)

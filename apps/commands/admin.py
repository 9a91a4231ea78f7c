from django.contrib import admin, messages

from apps.commands.models import Command
from apps.commands.services import commands_dispatch_pending, commands_expire_now
from apps.devices.models import Device


@admin.register(Command)
class CommandAdmin(admin.ModelAdmin):
    """Commands are created through the API (which queues their sending); here staff follow them and can
    expire the ones that should not go out any more."""

    list_display = ["cmd", "device", "status", "created_at", "acked_at", "answered_by", "expires_at", "short_detail"]
    list_filter = ["status", "cmd", ("acked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["device", "acked_by", "acked_by_device"]
    search_fields = ["id", "cmd", "device__device_id", "ack_detail"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in Command._meta.fields]
    actions = ["expire_now", "send_pending_again"]

    @admin.display(description="answered by")
    def answered_by(self, obj: Command) -> str:
        if obj.acked_by_device_id:
            return f"device {obj.acked_by_device.device_id}"
        return f"user {obj.acked_by.username}" if obj.acked_by_id else ""

    @admin.display(description="detail")
    def short_detail(self, obj: Command) -> str:
        return obj.ack_detail[:80]

    def has_manage_permission(self, request) -> bool:
        """Who may expire and resend: holders of the change permission (operators and admins), who may also
        send commands in the API; rows are never edited by hand, so has_change_permission stays False."""
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    @admin.action(description="Expire the selected commands that are still pending or sent", permissions=["manage"])
    def expire_now(self, request, queryset) -> None:
        expired = commands_expire_now(command_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Expired {expired} command(s).", messages.SUCCESS)

    @admin.action(
        description="Queue the pending commands of the selected commands' devices for sending", permissions=["manage"]
    )
    def send_pending_again(self, request, queryset) -> None:
        devices = Device.objects.filter(pk__in=queryset.values("device"))
        queued = sum(commands_dispatch_pending(device=device) for device in devices)
        self.message_user(request, f"Queued {queued} send(s); offline devices get theirs when they are back.")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

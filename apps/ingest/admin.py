from django.contrib import admin, messages

from apps.ingest.models import IngestBatch
from apps.ingest.services import enqueue_batch


@admin.register(IngestBatch)
class IngestBatchAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "status",
        "source",
        "device",
        "received_at",
        "received",
        "stored",
        "duplicates",
        "rejected",
        "attempts",
    ]
    list_filter = ["status", "source"]
    search_fields = ["id", "device__device_id", "request_id"]
    list_select_related = ["device"]
    date_hierarchy = "received_at"
    readonly_fields = [f.name for f in IngestBatch._meta.fields if f.name != "payload"]
    exclude = ["payload"]
    actions = ["requeue"]

    # Only admins hold the change permission on batches.
    @admin.action(description="Queue the selected unfinished batches again", permissions=["change"])
    def requeue(self, request, queryset):
        unfinished = queryset.exclude(status=IngestBatch.Status.DONE).values_list("pk", flat=True)
        for batch_id in unfinished:
            enqueue_batch(batch_id=str(batch_id))
        self.message_user(request, f"Queued {len(unfinished)} batch(es) again.", messages.SUCCESS)

    def has_add_permission(self, request) -> bool:
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).defer("payload")

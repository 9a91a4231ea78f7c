from django.contrib import admin

from apps.aggregates.models import ExportJob, RollupOverflow, RollupState


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "format", "status", "created_by", "created_at", "rows", "size_bytes", "expires_at"]
    list_filter = ["status", "kind", "format"]
    search_fields = ["id", "created_by__username"]
    list_select_related = ["created_by"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in ExportJob._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # jobs come from the export endpoints


@admin.register(RollupState)
class RollupStateAdmin(admin.ModelAdmin):
    """How far the rollups are trusted and what the last refresh and purge did; written only by the tasks."""

    list_display = ["watermark", "covered_from", "backfilled", "last_refresh_at", "last_refresh_ms", "last_purge_at"]
    readonly_fields = [field.name for field in RollupState._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(RollupOverflow)
class RollupOverflowAdmin(admin.ModelAdmin):
    """Buckets whose sum exceeds float8: delete the readings at fault, rebuild that time's rollups
    (manage.py rebuild_rollups), then delete the entry."""

    list_display = ["sensor", "granularity", "bucket", "detected_at"]
    list_filter = ["granularity"]
    search_fields = ["sensor__key"]
    list_select_related = ["sensor"]
    readonly_fields = ["sensor", "granularity", "bucket", "detected_at"]

    def has_add_permission(self, request) -> bool:
        return False  # written by the rollup refresh

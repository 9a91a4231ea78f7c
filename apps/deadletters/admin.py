from django.contrib import admin, messages

from apps.deadletters.models import DeadLetter
from apps.deadletters.services import REPLAYABLE_SOURCES, deadletter_replay


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = ["task_name", "source", "created_at", "attempts", "short_error", "replay_count", "replayed_at"]
    list_filter = ["source", "task_name", ("replayed_at", admin.EmptyFieldListFilter)]
    search_fields = ["task_name", "task_id", "error"]
    readonly_fields = [f.name for f in DeadLetter._meta.fields]
    actions = ["replay"]
    date_hierarchy = "created_at"

    @admin.display(description="error")
    def short_error(self, obj: DeadLetter) -> str:
        return obj.error[:120]

    # Replaying re-runs work with its original arguments; only admins hold the change permission here.
    @admin.action(description="Replay the selected dead letters", permissions=["change"])
    def replay(self, request, queryset):
        replayable = queryset.filter(source__in=REPLAYABLE_SOURCES)
        for dead_letter in replayable:
            deadletter_replay(dead_letter=dead_letter)
        self.message_user(request, f"Replayed {replayable.count()} dead letter(s).", messages.SUCCESS)
        skipped = queryset.count() - replayable.count()
        if skipped:
            self.message_user(
                request, f"{skipped} dead letter(s) of other sources cannot be replayed.", messages.WARNING
            )

    def has_add_permission(self, request) -> bool:
        return False

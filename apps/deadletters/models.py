from django.db import models


class DeadLetter(models.Model):
    """A task (or a message) that failed for good: what it was asked to do and why it failed, to replay."""

    source = models.CharField(max_length=32, default="task", help_text="task, mqtt, ...")
    task_name = models.CharField(max_length=200)
    task_id = models.CharField(max_length=64, blank=True, default="")
    queue = models.CharField(max_length=64, blank=True, default="")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    payload = models.JSONField(null=True, blank=True, help_text="Raw message for non-task sources.")
    error = models.TextField()
    traceback = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    replay_count = models.PositiveIntegerField(default=0)
    replayed_at = models.DateTimeField(null=True, blank=True)
    last_replay_task_id = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["task_name", "-created_at"]), models.Index(fields=["replayed_at"])]

    def __str__(self) -> str:
        return f"{self.task_name} ({self.created_at:%Y-%m-%d %H:%M})"

"""The names of every Celery task, the one contract between the code that queues a task and the worker
module that runs it (workers/tasks/). Apps send tasks by these names (current_app.send_task) rather than
importing the worker modules, which sit above every app; dead letters and sweeps find a task's rows by them.
Renaming one here renames both sides; a task's name is also stored in dead letters and beat entries."""

# ingest
PROCESS_BATCH_TASK = "ingest.process_batch"
REQUEUE_STALE_BATCHES_TASK = "ingest.requeue_stale_batches"
PURGE_BATCHES_TASK = "ingest.purge_batches"
CREATE_READING_PARTITIONS_TASK = "ingest.create_reading_partitions"
COMPACT_READING_PARTITIONS_TASK = "ingest.compact_reading_partitions"
# alerts: evaluates thresholds for a stored batch and sets the batch's evaluated_at
EVALUATE_BATCH_TASK = "alerts.evaluate_batch"
REQUEUE_UNEVALUATED_BATCHES_TASK = "alerts.requeue_unevaluated_batches"
# notifications
FAN_OUT_TASK = "notifications.fan_out"
DELIVER_TASK = "notifications.deliver"
RENOTIFY_TASK = "notifications.renotify"
SEND_DIGESTS_TASK = "notifications.send_digests"
REQUEUE_STALLED_TASK = "notifications.requeue_stalled"
# devices: connectivity and commands
CHECK_CONNECTIVITY_TASK = "devices.check_connectivity"
SEND_COMMAND_TASK = "devices.send_command"
SWEEP_COMMANDS_TASK = "devices.sweep_commands"
# aggregates
REFRESH_ROLLUPS_TASK = "aggregates.refresh_rollups"
PURGE_RETENTION_TASK = "aggregates.purge_retention"
RUN_EXPORT_TASK = "aggregates.run_export"
SWEEP_EXPORTS_TASK = "aggregates.sweep_exports"
# mqtt
SYNC_DEVICE_ACCOUNT_TASK = "mqtt.sync_device_account"
RECONCILE_BROKER_ACCOUNTS_TASK = "mqtt.reconcile_broker_accounts"
REPLAY_DEAD_LETTER_TASK = "mqtt.replay_dead_letter"
# workers
PING_TASK = "housekeeping.ping"

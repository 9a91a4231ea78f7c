"""Who hears of an alert event and how: subscriptions and maintenance windows (models.py), which
subscriptions match (matching.py, no database), the fan-out, delivery over email, webhooks, SMS and push
(channels.py), storm control, digests and reminders; services/ by concern, one module each."""

"""Delivery errors used to end with the first 300 bytes of the receiver's answer ("HTTP 500 from <url>: <body>"),
readable by every viewer of the delivery history. They keep the status and the URL now; so do older rows."""

from django.db import migrations

# The URL holds no space, so what follows "HTTP <status> from <url>: " was the answer's body.
STRIP_BODIES = r"""
UPDATE notifications_notification
SET last_error = substring(last_error FROM '^(HTTP [0-9]{3} from [^ ]+): ')
WHERE last_error ~ '^HTTP [0-9]{3} from [^ ]+: '
"""


class Migration(migrations.Migration):
    dependencies = [("notifications", "0002_subscription_time_zone_default")]

    operations = [migrations.RunSQL(STRIP_BODIES, reverse_sql=migrations.RunSQL.noop)]

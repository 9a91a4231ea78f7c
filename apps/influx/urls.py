from django.urls import path

from apps.influx.api import WriteView

urlpatterns = [
    # No trailing slash: InfluxDB clients post to /api/v2/write exactly.
    path("write", WriteView.as_view(), name="influx-write"),
]

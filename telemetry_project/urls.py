from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.core import health

api_v1 = [
    path("", include("apps.accounts.urls")),
    path("", include("apps.locations.urls")),
    path("", include("apps.devices.urls")),
    path("", include("apps.thresholds.urls")),
    path("", include("apps.anomaly.urls")),
    path("", include("apps.ingest.urls")),
    path("", include("apps.alerts.urls")),
    path("", include("apps.notifications.urls")),
    path("", include("apps.aggregates.urls")),
    path("", include("apps.stats.urls")),
    path("", include("apps.commands.urls")),
    path("", include("apps.sparkplug.urls")),
]

urlpatterns = [
    path("health", health.liveness, name="health"),
    path("health/ready", health.readiness, name="health-ready"),
    path("", include("apps.operations.urls")),
    path("admin/", admin.site.urls),
    path("ops/", include("apps.dashboard.urls")),
    path("api/v1/", include(api_v1)),
    path("api/v2/", include("apps.influx.urls")),  # the InfluxDB v2 write API (docs/protocols.md)
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]

admin.site.site_header = "Telemetry administration"
admin.site.site_title = "Telemetry"

handler400 = "apps.core.handlers.bad_request"
handler404 = "apps.core.handlers.not_found"
handler500 = "apps.core.handlers.server_error"

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.aggregates.api import (
    AggregatesExportView,
    AggregatesView,
    ExportDownloadView,
    ExportJobViewSet,
    ReadingsExportView,
)

router = SimpleRouter()
router.register("exports/jobs", ExportJobViewSet, basename="export-job")

urlpatterns = [
    path("aggregates/", AggregatesView.as_view(), name="aggregates"),
    path("exports/readings", ReadingsExportView.as_view(), name="export-readings"),
    path("exports/aggregates", AggregatesExportView.as_view(), name="export-aggregates"),
    path("exports/jobs/<uuid:pk>/download", ExportDownloadView.as_view(), name="export-job-download"),
    *router.urls,
]

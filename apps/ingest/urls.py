from django.urls import path

from apps.ingest.api import BatchDetailView, ImportView, IngestView, ReadingsView, RealtimeView

urlpatterns = [
    path("ingest/", IngestView.as_view(), name="ingest"),
    path("ingest/import/", ImportView.as_view(), name="ingest-import"),
    path("ingest/batches/<uuid:batch_id>/", BatchDetailView.as_view(), name="ingest-batch"),
    path("readings/", ReadingsView.as_view(), name="readings"),
    path("realtime/", RealtimeView.as_view(), name="realtime"),
]

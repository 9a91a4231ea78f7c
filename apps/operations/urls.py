from django.urls import path

from apps.operations.views import metrics

urlpatterns = [path("metrics", metrics, name="metrics")]

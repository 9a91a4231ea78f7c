from django.urls import path

from apps.stats.api import StatsView

urlpatterns = [path("stats/", StatsView.as_view(), name="stats")]

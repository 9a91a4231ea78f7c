from django.urls import path
from rest_framework.routers import DefaultRouter

from apps.anomaly.api import AnomalyBandView, AnomalyRuleViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("anomaly-rules", AnomalyRuleViewSet, basename="anomaly-rule")
urlpatterns = [path("anomaly-band/", AnomalyBandView.as_view(), name="anomaly-band"), *router.urls]

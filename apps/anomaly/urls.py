from rest_framework.routers import DefaultRouter

from apps.anomaly.api import AnomalyRuleViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("anomaly-rules", AnomalyRuleViewSet, basename="anomaly-rule")
urlpatterns = router.urls

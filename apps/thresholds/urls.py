from rest_framework.routers import DefaultRouter

from apps.thresholds.api import ThresholdMappingViewSet, ThresholdViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("thresholds", ThresholdViewSet, basename="threshold")
router.register("threshold-mappings", ThresholdMappingViewSet, basename="threshold-mapping")
urlpatterns = router.urls

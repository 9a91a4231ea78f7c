from rest_framework.routers import DefaultRouter

from apps.alerts.api import AlertViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("alerts", AlertViewSet, basename="alert")
urlpatterns = router.urls

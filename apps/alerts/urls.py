from rest_framework.routers import DefaultRouter

from apps.alerts.api import AlertViewSet, MaintenanceWindowViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("alerts", AlertViewSet, basename="alert")
router.register("maintenance-windows", MaintenanceWindowViewSet, basename="maintenance-window")
urlpatterns = router.urls

from rest_framework.routers import DefaultRouter

from apps.devices.api import DeviceViewSet, SensorTypeViewSet, SensorViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("sensor-types", SensorTypeViewSet, basename="sensor-type")
router.register("devices", DeviceViewSet, basename="device")
router.register("sensors", SensorViewSet, basename="sensor")
urlpatterns = router.urls

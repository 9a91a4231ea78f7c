from rest_framework.routers import DefaultRouter

from apps.sparkplug.api import EndpointViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("sparkplug/endpoints", EndpointViewSet, basename="sparkplug-endpoint")

urlpatterns = router.urls

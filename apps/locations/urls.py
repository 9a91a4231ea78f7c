from rest_framework.routers import DefaultRouter

from apps.locations.api import LocationViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("locations", LocationViewSet, basename="location")
urlpatterns = router.urls

from rest_framework.routers import DefaultRouter

from apps.notifications.api import MaintenanceWindowViewSet, NotificationViewSet, SubscriptionViewSet

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("subscriptions", SubscriptionViewSet, basename="subscription")
router.register("notifications", NotificationViewSet, basename="notification")
router.register("maintenance-windows", MaintenanceWindowViewSet, basename="maintenance-window")
urlpatterns = router.urls

from django.urls import path
from rest_framework.routers import DefaultRouter

from apps.commands.api import CommandViewSet, DeviceCommandsView

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("commands", CommandViewSet, basename="command")

urlpatterns = [
    # Next to the devices router's own routes for a device (heartbeat, rotate-key); the id is checked by the
    # view, so a bad one is a JSON 404 like theirs.
    path("devices/<str:id>/commands/", DeviceCommandsView.as_view(), name="device-commands"),
    *router.urls,
]

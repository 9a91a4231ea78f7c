"""Staff pages in the admin's look: the plant overview, a sensor's chart, the alerts board and a device.

The server renders what changes rarely (the location tree, a sensor's thresholds, a device's details) and
each page's script polls the REST API with the session login for the rest, so the pages show exactly what
API consumers see and every action goes through the API's own permission checks.

Who may look: anyone holding a reading role (viewer, operator, admin; superusers are admins), the same people
who may read the API the pages are drawn from; the ingest role of gateways reads nothing. Viewers are not staff (they have no business in the model admin),
so the dashboard has its own login page, in the admin's look, that accepts them. Acting (acknowledge,
resolve, send a command) needs the operator role, as in the API.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.views import LoginView, LogoutView, redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse, reverse_lazy

from apps.accounts.roles import Role, role_of
from apps.dashboard.selectors import (
    device_with_sensors,
    location_tree,
    sensor_type_choices,
    sensor_with_thresholds,
)

# How often the pages ask the API for news, in seconds.
OVERVIEW_POLL_S = 5
BOARD_POLL_S = 10
DEVICE_POLL_S = 10


def role_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed-in users with a role; others go to the dashboard login, or get a 403 page without a role."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), login_url=reverse("dashboard:login"))
        role = role_of(request.user)
        if role is None or role < Role.VIEWER:  # the ingest role reads nothing
            context = page_context(request, title="No access")
            return TemplateResponse(request, "dashboard/forbidden.html", context, status=403)
        return view(request, *args, **kwargs)

    return wrapped


def _url(name: str, *args) -> str | None:
    """The path of a named URL, or None while the app that serves it has not landed."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


def page_context(request: HttpRequest, *, title: str, **extra) -> dict:
    role = role_of(request.user)
    return {
        **admin.site.each_context(request),
        "title": title,
        "role": role.name.lower() if role else None,
        "can_act": role is not None and role >= Role.OPERATOR,
        **extra,
    }


def _api_urls(**named: tuple) -> dict[str, str | None]:
    return {key: _url(name, *args) for key, (name, *args) in named.items()}


@role_required
def overview(request: HttpRequest) -> TemplateResponse:
    config = {
        "poll_s": OVERVIEW_POLL_S,
        "stale_after_s": settings.REALTIME_STALE_AFTER_S,
        "sensor_types": sensor_type_choices(),
        "sensor_url": reverse("dashboard:sensor", args=[0]),
        "device_url": reverse("dashboard:device", args=[0]),
        "api": _api_urls(realtime=("realtime",), alerts=("alert-list",)),
    }
    context = page_context(request, title="Plant overview", tree=location_tree(), config=config)
    return TemplateResponse(request, "dashboard/overview.html", context)


@role_required
def sensor_page(request: HttpRequest, pk: int) -> TemplateResponse:
    sensor, thresholds = sensor_with_thresholds(pk)
    config = {
        "sensor": {
            "id": sensor.pk,
            "key": sensor.key,
            "unit": sensor.sensor_type.unit,
            "type": sensor.sensor_type.name,
        },
        "thresholds": [
            {
                "id": threshold.threshold_id,
                "warning_low": threshold.warning_low,
                "warning_high": threshold.warning_high,
                "critical_low": threshold.critical_low,
                "critical_high": threshold.critical_high,
            }
            for threshold in thresholds
        ],
        "alerts_board_url": reverse("dashboard:alerts"),
        "api": _api_urls(
            readings=("readings",),
            aggregates=("aggregates",),
            alerts=("alert-list",),
            export_readings=("export-readings",),
            export_aggregates=("export-aggregates",),
            anomaly_band=("anomaly-band",),
        ),
    }
    context = page_context(request, title=f"Sensor {sensor.key}", sensor=sensor, thresholds=thresholds, config=config)
    return TemplateResponse(request, "dashboard/sensor.html", context)


@role_required
def alerts_board(request: HttpRequest) -> TemplateResponse:
    context = page_context(request, title="Alerts board")
    context["config"] = {
        "poll_s": BOARD_POLL_S,
        "can_act": context["can_act"],
        "sensor_url": reverse("dashboard:sensor", args=[0]),
        "device_url": reverse("dashboard:device", args=[0]),
        "api": _api_urls(alerts=("alert-list",), notifications=("notification-list",)),
    }
    return TemplateResponse(request, "dashboard/alerts.html", context)


@role_required
def device_page(request: HttpRequest, pk: int) -> TemplateResponse:
    device, sensors = device_with_sensors(pk)
    context = page_context(request, title=f"Device {device.device_id}", device=device, sensors=sensors)
    context["config"] = {
        "poll_s": DEVICE_POLL_S,
        "can_act": context["can_act"],
        "device": {"id": device.pk, "device_id": device.device_id},
        "sensor_ids": [sensor.pk for sensor in sensors],
        "api": _api_urls(
            device=("device-detail", device.pk),
            aggregates=("aggregates",),
            alerts=("alert-list",),
            commands=("device-commands", device.pk),
        ),
    }
    return TemplateResponse(request, "dashboard/device.html", context)


class DashboardLoginView(LoginView):
    """The admin's login page for everyone with a role: the admin's own login accepts staff only."""

    template_name = "admin/login.html"
    redirect_authenticated_user = False
    next_page = reverse_lazy("dashboard:overview")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            {
                **admin.site.each_context(self.request),
                "title": "Log in",
                "subtitle": "Plant overview",
                "app_path": self.request.get_full_path(),
                "username": self.request.user.get_username(),
            }
        )
        return context


class DashboardLogoutView(LogoutView):
    next_page = reverse_lazy("dashboard:login")

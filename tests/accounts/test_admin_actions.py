"""Who may run which admin action: one row per action of every registered admin, checked for every role.

An action is offered (in the changelist's action menu, `get_actions`) exactly to the roles of its row, and
posting it as any other role is refused: a 403, the login page, or the admin's "No action selected.", with
the model's rows left exactly as they were. An admin or action added without a row here fails the test
that walks `admin.site._registry`.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages import get_messages
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from apps.accounts.group_permissions import sync_role_permissions
from apps.accounts.roles import Role
from apps.aggregates.models import ExportJob, RollupOverflow, RollupState
from apps.anomaly.detectors import new_states
from apps.anomaly.models import AnomalyRule
from apps.anomaly.states import states_save
from apps.commands.services import command_create
from apps.deadletters.models import DeadLetter
from apps.ingest.models import IngestBatch
from apps.notifications.models import MaintenanceWindow
from apps.sparkplug.models import Endpoint
from tests.alerts.helpers import evaluate, make_subscription, readings
from tests.factories import World, make_user

ROLES = ("anonymous", "viewer", "ingest", "operator", "admin", "superuser")
NOBODY: frozenset[str] = frozenset()
ADMINS = frozenset({"admin", "superuser"})
OPERATORS = frozenset({"operator", "admin", "superuser"})

BEAT = "django_celery_beat"
ACTIONS: dict[tuple[str, str], frozenset[str]] = {
    ("aggregates.ExportJob", "delete_selected"): ADMINS,
    ("aggregates.RollupOverflow", "delete_selected"): ADMINS,
    ("aggregates.RollupState", "delete_selected"): NOBODY,  # written only by the tasks
    ("alerts.Alert", "delete_selected"): ADMINS,
    ("alerts.Alert", "acknowledge"): OPERATORS,
    ("alerts.Alert", "resolve"): OPERATORS,
    ("alerts.ThresholdState", "delete_selected"): ADMINS,
    ("anomaly.AnomalyRule", "delete_selected"): OPERATORS,
    ("anomaly.AnomalyState", "delete_selected"): ADMINS,
    ("auth.Group", "delete_selected"): ADMINS,
    ("auth.User", "delete_selected"): ADMINS,
    ("commands.Command", "delete_selected"): ADMINS,
    ("commands.Command", "expire_now"): OPERATORS,
    ("commands.Command", "send_pending_again"): OPERATORS,
    ("deadletters.DeadLetter", "delete_selected"): ADMINS,
    ("deadletters.DeadLetter", "replay"): ADMINS,
    ("devices.Device", "delete_selected"): ADMINS,
    ("devices.Device", "rotate_ingest_key"): ADMINS,
    ("devices.Sensor", "delete_selected"): ADMINS,
    ("devices.SensorType", "delete_selected"): ADMINS,
    (f"{BEAT}.ClockedSchedule", "delete_selected"): ADMINS,
    (f"{BEAT}.CrontabSchedule", "delete_selected"): ADMINS,
    (f"{BEAT}.IntervalSchedule", "delete_selected"): ADMINS,
    (f"{BEAT}.SolarSchedule", "delete_selected"): ADMINS,
    (f"{BEAT}.PeriodicTask", "delete_selected"): ADMINS,
    (f"{BEAT}.PeriodicTask", "enable_tasks"): ADMINS,
    (f"{BEAT}.PeriodicTask", "disable_tasks"): ADMINS,
    (f"{BEAT}.PeriodicTask", "toggle_tasks"): ADMINS,
    (f"{BEAT}.PeriodicTask", "run_tasks"): ADMINS,
    ("ingest.IngestBatch", "delete_selected"): ADMINS,
    ("ingest.IngestBatch", "requeue"): ADMINS,
    ("locations.Location", "delete_selected"): ADMINS,
    ("notifications.MaintenanceWindow", "delete_selected"): OPERATORS,
    ("notifications.Notification", "delete_selected"): ADMINS,
    ("notifications.Notification", "retry"): OPERATORS,
    ("notifications.Subscription", "delete_selected"): OPERATORS,
    ("notifications.Subscription", "rotate_secret"): OPERATORS,
    ("sparkplug.Endpoint", "accept"): ADMINS,
    ("sparkplug.Endpoint", "delete_selected"): ADMINS,
    ("thresholds.SensorThresholdMapping", "delete_selected"): OPERATORS,
    ("thresholds.Threshold", "delete_selected"): OPERATORS,
}


def registered_actions() -> dict[tuple[str, str], tuple]:
    """(model label, action name) -> (model, model admin) for every action of every registered admin."""
    return {
        (model._meta.label, name): (model, model_admin)
        for model, model_admin in admin.site._registry.items()
        for _, name, _ in model_admin._get_base_actions()
        if model_admin.actions is not None  # `actions = None` switches them off, the site's included
    }


def test_every_action_of_every_admin_has_a_row():
    assert set(registered_actions()) - set(ACTIONS) == set(), "add these actions to ACTIONS"
    assert set(ACTIONS) - set(registered_actions()) == set(), "these actions are gone: remove their rows"


def test_every_action_declares_the_permissions_it_needs():
    undeclared = [
        key
        for key, (_, model_admin) in registered_actions().items()
        if not getattr(model_admin.get_action(key[1])[0], "allowed_permissions", None)
    ]

    assert undeclared == []


# Rows for the models the test world has none of, so that a refused action has something it could change.
def _alert_with_notification(world: World) -> None:
    make_subscription()
    evaluate(readings("env-001/temperature", (0, 45.0), (120, 45.0)))


def _periodic_task(world: World) -> None:
    every_minute = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="ping", task="housekeeping.ping", interval=every_minute)


ROW_BUILDERS = {
    "aggregates.ExportJob": lambda world: ExportJob.objects.create(kind="readings", format="csv"),
    "aggregates.RollupOverflow": lambda world: RollupOverflow.objects.create(
        sensor=world.sensors["env-001/temperature"], granularity="hour", bucket=timezone.now()
    ),
    "aggregates.RollupState": lambda world: RollupState.objects.get_or_create(pk=RollupState.SINGLETON),
    "anomaly.AnomalyRule": lambda world: AnomalyRule.objects.create(
        sensor_type=world.sensor_types["temperature"], enabled=True
    ),
    "anomaly.AnomalyState": lambda world: states_save([world.sensors["env-001/temperature"].pk], new_states(1)),
    "alerts.Alert": _alert_with_notification,
    "alerts.ThresholdState": _alert_with_notification,
    "commands.Command": lambda world: command_create(device=world.devices["env-001"], cmd="reboot"),
    "deadletters.DeadLetter": lambda world: DeadLetter.objects.create(task_name="housekeeping.ping", error="gone"),
    "ingest.IngestBatch": lambda world: IngestBatch.objects.create(received_at=timezone.now(), received=1),
    "notifications.MaintenanceWindow": lambda world: MaintenanceWindow.objects.create(
        name="retrofit",
        device=world.devices["env-001"],
        starts_at=timezone.now(),
        ends_at=timezone.now() + timedelta(hours=2),
    ),
    "notifications.Notification": _alert_with_notification,
    "notifications.Subscription": lambda world: make_subscription(),
    "sparkplug.Endpoint": lambda world: Endpoint.objects.create(
        group="plant", edge_node="edge1", device_name="env1", metrics={"temperature": {"datatype": 10}}
    ),
    f"{BEAT}.PeriodicTask": _periodic_task,
    f"{BEAT}.IntervalSchedule": _periodic_task,
    f"{BEAT}.CrontabSchedule": lambda world: CrontabSchedule.objects.create(),
    f"{BEAT}.SolarSchedule": lambda world: SolarSchedule.objects.create(event="sunrise", latitude=52, longitude=13),
    f"{BEAT}.ClockedSchedule": lambda world: ClockedSchedule.objects.create(clocked_time=timezone.now()),
}


def user_of(role: str):
    if role == "anonymous":
        return None
    if role == "superuser":
        return get_user_model().objects.create_superuser("root", password="a-long-test-password")
    user, _ = make_user(f"{role}-user", Role.from_name(role))
    return user


def snapshot(model) -> list[dict]:
    return list(model._default_manager.order_by("pk").values())


@pytest.mark.django_db
@pytest.mark.parametrize(("label", "action"), sorted(ACTIONS), ids=lambda value: value)
def test_action_is_offered_to_and_runs_for_its_roles_only(world, label: str, action: str):
    model, model_admin = registered_actions()[(label, action)]
    sync_role_permissions()
    users = {role: user_of(role) for role in ROLES}
    if not model._default_manager.exists():
        ROW_BUILDERS[label](world)
    row = model._default_manager.order_by("pk").first()
    assert row is not None, f"no row of {label} to act on"
    changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    allowed = ACTIONS[(label, action)]

    offered_to = set()
    for role, user in users.items():
        request = RequestFactory().get(changelist)
        request.user = user if user is not None else AnonymousUser()
        if request.user.is_staff and action in model_admin.get_actions(request):
            offered_to.add(role)
    assert offered_to == allowed

    for role in set(ROLES) - allowed:
        client = Client()
        if users[role] is not None:
            client.force_login(users[role])
        before = snapshot(model)

        response = client.post(
            changelist,
            {"action": action, "select_across": "1", "index": "0", "_selected_action": [quote(row.pk)]},
        )

        assert snapshot(model) == before, f"{action} ran for {role}"
        assert refused(response), f"{action} as {role}: {response.status_code}"


def refused(response) -> bool:
    """The admin's answers to an action the user may not run: nothing but a refusal or the list again."""
    notes = [str(message) for message in get_messages(response.wsgi_request)]
    if response.status_code == 403:
        return True
    if response.status_code == 302:
        # Not staff: the admin's login page; staff: back to the list, told that no (valid) action was chosen.
        return response["Location"].startswith(reverse("admin:login")) or notes == ["No action selected."]
    # Staff offered no action at all: the post is not taken for an action and the list is shown again.
    templates = response.template_name if isinstance(response.template_name, list) else [response.template_name]
    return response.status_code == 200 and "admin/change_list.html" in templates and notes == []

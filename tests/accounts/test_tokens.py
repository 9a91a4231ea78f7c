from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from apps.accounts.roles import Role, role_of
from apps.accounts.services import user_set_role
from tests.factories import API, assert_error_shape, make_user, token_client

pytestmark = pytest.mark.django_db

TOKEN_URL = f"{API}/auth/token/"


def test_token_endpoint_exchanges_username_and_password_for_the_users_token(anonymous_api):
    _, token = make_user("script", Role.VIEWER, password="s3cret-pass")

    response = anonymous_api.post(TOKEN_URL, {"username": "script", "password": "s3cret-pass"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json() == {"token": token}
    assert token_client(token).get(f"{API}/locations/").status_code == 200


def test_token_endpoint_refuses_a_wrong_password_in_the_error_shape(anonymous_api):
    make_user("script", Role.VIEWER, password="s3cret-pass")

    response = anonymous_api.post(TOKEN_URL, {"username": "script", "password": "wrong"}, format="json")

    assert response.status_code == 400
    body = assert_error_shape(response)
    assert "token" not in body


def test_token_endpoint_names_missing_fields(anonymous_api):
    response = anonymous_api.post(TOKEN_URL, {"username": "script"}, format="json")

    assert response.status_code == 400
    assert_error_shape(response, "password")


def test_an_unknown_token_is_401(world):
    response = token_client("0" * 40).get(f"{API}/locations/")

    assert response.status_code == 401
    assert_error_shape(response)


def test_create_api_user_prints_a_working_operator_token(world):
    out = StringIO()

    call_command("create_api_user", "line-bot", "--role", "operator", stdout=out)

    token = out.getvalue().strip()
    user = get_user_model().objects.get(username="line-bot")
    assert Token.objects.get(user=user).key == token
    assert role_of(user) == Role.OPERATOR
    client = token_client(token)
    created = client.post(
        f"{API}/thresholds/", {"sensor_type": world.sensor_types["humidity"].pk, "warning_high": 80}, format="json"
    )
    assert created.status_code == 201, created.content
    assert client.post(f"{API}/devices/", {"device_id": "nope-1"}, format="json").status_code == 403


def test_create_api_user_again_changes_the_role_and_keeps_the_token(db):
    first, second = StringIO(), StringIO()

    call_command("create_api_user", "dash", "--role", "admin", stdout=first)
    call_command("create_api_user", "dash", "--role", "viewer", stdout=second)

    assert first.getvalue() == second.getvalue()
    user = get_user_model().objects.get(username="dash")
    assert role_of(user) == Role.VIEWER
    assert list(user.groups.values_list("name", flat=True)) == ["viewer"]
    assert not user.is_staff


@pytest.mark.parametrize(("role", "staff"), [(Role.VIEWER, False), (Role.OPERATOR, True), (Role.ADMIN, True)])
def test_user_set_role_holds_exactly_one_role(db, role, staff):
    user, token = user_set_role(username="someone", role=role, password="pw-123456")

    assert role_of(user) == role
    assert user.is_staff is staff
    assert user.check_password("pw-123456")
    assert Token.objects.filter(user=user, key=token).exists()


def test_superusers_are_admins_and_users_without_a_group_have_no_role(db):
    User = get_user_model()
    superuser = User.objects.create_superuser("root", password="x")
    nobody = User.objects.create_user("nobody", password="x")
    token = Token.objects.create(user=nobody)

    assert role_of(superuser) == Role.ADMIN
    assert role_of(nobody) is None
    assert token_client(token.key).get(f"{API}/locations/").status_code == 403

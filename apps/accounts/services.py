from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from apps.accounts.roles import ROLE_NAMES, Role


@transaction.atomic
def user_set_role(*, username: str, role: Role, password: str | None = None, email: str = "") -> tuple:
    """Create or update a user holding exactly `role`; returns (user, token key). Admins are also staff."""
    User = get_user_model()
    user, _ = User.objects.get_or_create(username=username, defaults={"email": email})
    if password:
        user.set_password(password)
    elif not user.has_usable_password():
        user.set_unusable_password()
    user.is_staff = role >= Role.OPERATOR
    if email:
        user.email = email
    user.save()
    user.groups.remove(*Group.objects.filter(name__in=ROLE_NAMES))
    user.groups.add(Group.objects.get(name=role.group_name))
    return user, token_issue(user=user).key


def token_expired(token: Token) -> bool:
    """Whether a token is older than API_TOKEN_TTL_DAYS (never, when that is 0)."""
    ttl_days = settings.API_TOKEN_TTL_DAYS
    return bool(ttl_days) and token.created < timezone.now() - timedelta(days=ttl_days)


@transaction.atomic
def token_issue(*, user) -> Token:
    """The user's API token: the current one, or a new one when it has expired (the old key stops working)."""
    token, _ = Token.objects.select_for_update().get_or_create(user=user)
    if token_expired(token):
        token.delete()
        token = Token.objects.create(user=user)
    return token

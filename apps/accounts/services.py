from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
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
    token, _ = Token.objects.get_or_create(user=user)
    return user, token.key

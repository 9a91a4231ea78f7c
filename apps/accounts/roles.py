"""Roles are Django groups. Viewer, operator and admin are ordered: each can do everything the roles below it
can. Ingest stands beside them: it may only call what a view names in `ingest_actions` (sending readings,
heartbeats, reading its own batches), and since it compares below viewer it passes no role check of theirs.
"""

from __future__ import annotations

from enum import IntEnum

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


class Role(IntEnum):
    INGEST = 0
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    def __bool__(self) -> bool:
        # INGEST is 0 so that it compares below viewer; a role held is still a role (`if role:`).
        return True

    @property
    def group_name(self) -> str:
        return self.name.lower()

    @classmethod
    def from_name(cls, name: str) -> Role:
        return cls[name.upper()]


ROLE_NAMES = [role.group_name for role in Role]


def role_of(user: AbstractBaseUser | AnonymousUser) -> Role | None:
    """The highest role a user holds; superusers are admins. None for anyone without a role."""
    if not getattr(user, "is_authenticated", False) or not hasattr(user, "groups"):
        return None
    if user.is_superuser:
        return Role.ADMIN
    cached = getattr(user, "_telemetry_role", False)
    if cached is not False:
        return cached
    names = set(user.groups.filter(name__in=ROLE_NAMES).values_list("name", flat=True))
    held = [role for role in Role if role.group_name in names]
    role = max(held) if held else None
    user._telemetry_role = role
    return role

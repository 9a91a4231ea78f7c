"""Role checks for every API view.

Views declare what they need:
- `read_role` (default viewer) for safe methods, `write_role` (default admin) for the rest;
- `action_roles` to override per viewset action (e.g. acknowledge needs operator);
- `device_actions`: viewset actions (or "*" for a plain view) that a device key may call. Devices may call
  nothing else, and views check that a device only touches its own rows.
- `ingest_actions`: the same for users of the ingest role (gateways): they may call nothing else, and views
  show them only what they sent (their own batches).
"""

from __future__ import annotations

from rest_framework import permissions

from apps.accounts.principals import DevicePrincipal
from apps.accounts.roles import Role, role_of


def request_device(request):
    """The authenticated device of a request, or None for people and integrations."""
    return request.user.device if isinstance(request.user, DevicePrincipal) else None


class RolePermission(permissions.BasePermission):
    message = "Your role does not allow this."

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        action = getattr(view, "action", None) or "*"
        if isinstance(request.user, DevicePrincipal):
            allowed = getattr(view, "device_actions", ())
            return "*" in allowed or action in allowed
        role = role_of(request.user)
        if role is None:
            return False
        if role == Role.INGEST:
            allowed = getattr(view, "ingest_actions", ())
            return "*" in allowed or action in allowed
        return role >= self.required_role(request, view, action)

    @staticmethod
    def required_role(request, view, action: str) -> Role:
        action_roles = getattr(view, "action_roles", {})
        if action in action_roles:
            return action_roles[action]
        if request.method in permissions.SAFE_METHODS:
            return getattr(view, "read_role", Role.VIEWER)
        return getattr(view, "write_role", Role.ADMIN)

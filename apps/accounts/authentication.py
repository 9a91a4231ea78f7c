"""API tokens that expire: refused once older than API_TOKEN_TTL_DAYS (0 or unset: tokens never expire)."""

from __future__ import annotations

from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from apps.accounts.services import token_expired


class ExpiringTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if token_expired(token):
            raise AuthenticationFailed(
                "This token has expired: get a new one from POST /api/v1/auth/token/ (or ask an admin)."
            )
        return user, token

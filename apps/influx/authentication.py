"""`Authorization: Token <API token or device key>`, the header every InfluxDB client and Telegraf send.

DRF's TokenAuthentication uses the same keyword for people's and integrations' API tokens, so a token that is
not a user's is tried as a device's ingest key (which then speaks for its own device only). `Authorization:
Device <key>` works too, as on the rest of the API.
"""

from __future__ import annotations

from functools import cache

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.settings import api_settings

from apps.devices.authentication import DeviceKeyAuthentication


class _DeviceKeyAsToken(DeviceKeyAuthentication):
    keyword = "Token"


@cache
def _user_token_authentication() -> type[authentication.TokenAuthentication]:
    """The API's own token authentication (a subclass may add rules, such as expiry), or DRF's."""
    for candidate in api_settings.DEFAULT_AUTHENTICATION_CLASSES:
        if issubclass(candidate, authentication.TokenAuthentication):
            return candidate
    return authentication.TokenAuthentication


class InfluxTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header:
            return None
        keyword = header[0].lower()
        if keyword == b"device":
            return DeviceKeyAuthentication().authenticate(request)
        if keyword != b"token":
            return None
        try:
            return _user_token_authentication()().authenticate(request)
        except exceptions.AuthenticationFailed:
            pass
        try:
            return _DeviceKeyAsToken().authenticate(request)
        except exceptions.AuthenticationFailed:
            raise exceptions.AuthenticationFailed(
                "Invalid token: neither an active user's API token nor an active device's ingest key."
            ) from None

    def authenticate_header(self, request) -> str:
        return self.keyword


class InfluxTokenScheme(OpenApiAuthenticationExtension):
    """Names the InfluxDB-style token in the OpenAPI schema's security schemes."""

    target_class = InfluxTokenAuthentication
    name = "influxToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <API token or device ingest key>`, as InfluxDB clients and Telegraf send it.",
        }

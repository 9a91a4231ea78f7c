"""`Authorization: Device <ingest key>` for devices and gateways."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from apps.accounts.principals import DevicePrincipal
from apps.devices.models import Device


class DeviceKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Device"

    def authenticate(self, request) -> tuple[DevicePrincipal, Device] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid Device header: expected 'Device <ingest key>'.")
        try:
            key = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid Device header: the key must be ASCII.") from None
        device = Device.objects.for_ingest_key(key)
        if device is None:
            raise exceptions.AuthenticationFailed("Unknown or rotated device key.")
        if device.status == Device.Status.INACTIVE:
            raise exceptions.AuthenticationFailed("This device is inactive.")
        return DevicePrincipal(device=device), device

    def authenticate_header(self, request) -> str:
        return self.keyword


class DeviceKeyScheme(OpenApiAuthenticationExtension):
    """Names the device key in the OpenAPI schema's security schemes."""

    target_class = DeviceKeyAuthentication
    name = "deviceKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Device <ingest key>`: a device's own key, for ingest and its heartbeats.",
        }

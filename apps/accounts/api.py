from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import Throttled, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from apps.accounts.login_throttling import lockout_message, lockout_seconds
from apps.accounts.services import token_issue
from apps.core.schema import ErrorSerializer


class TokenView(ObtainAuthToken):
    """Exchange a username and password for the user's API token (a new one when it has expired)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=inline_serializer(
            "TokenRequest", {"username": serializers.CharField(), "password": serializers.CharField()}
        ),
        responses={
            200: inline_serializer("TokenResponse", {"token": serializers.CharField()}),
            400: OpenApiResponse(ErrorSerializer, description="Missing fields, or a wrong username or password."),
            429: OpenApiResponse(
                ErrorSerializer,
                description="Too many failed logins from this address or for this user; see Retry-After.",
            ),
        },
        auth=[],
        tags=["auth"],
    )
    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        valid = serializer.is_valid()
        # Set by the login throttle (apps/accounts/login_throttling.py) when this attempt was refused or was
        # the failure that reached the limit: the answer is a 429 whatever the password was.
        if getattr(request, "axes_locked_out", False):
            raise Throttled(wait=lockout_seconds(), detail=lockout_message())
        if not valid:
            raise ValidationError(serializer.errors)
        return Response({"token": token_issue(user=serializer.validated_data["user"]).key})

"""System checks of the deployment settings that `manage.py check` (and so `migrate`, which every deployment
runs first) must refuse, not just warn about under --deploy."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

# Short stand-ins ("x", "changeme", "secret") fail on length; these mark the long ones: docker/.env.example's
# "a-long-random-string", the development default, Django's "django-insecure-..." and their kin.
PLACEHOLDER_MARKS = ("changeme", "change-me", "change_me", "insecure", "placeholder", "example", "random-string")
MIN_SECRET_KEY_LENGTH = 50  # Django's own (security.W009)
MIN_SECRET_KEY_CHARACTERS = 5


def secret_key_problem(key: str) -> str | None:
    """Why a SECRET_KEY is not fit for production, or None."""
    lowered = key.lower()
    if any(mark in lowered for mark in PLACEHOLDER_MARKS):
        return "is a placeholder"
    if len(key) < MIN_SECRET_KEY_LENGTH:
        return f"is shorter than {MIN_SECRET_KEY_LENGTH} characters"
    if len(set(key)) < MIN_SECRET_KEY_CHARACTERS:
        return f"has fewer than {MIN_SECRET_KEY_CHARACTERS} different characters"
    return None


@checks.register(checks.Tags.security)
def check_secret_key(app_configs, **kwargs) -> list[checks.CheckMessage]:
    if settings.DEBUG:
        return []  # development: `make run` writes a random key, and a fixed fallback is fine there
    problem = secret_key_problem(settings.SECRET_KEY)
    if problem is None:
        return []
    return [
        checks.Error(
            f"SECRET_KEY {problem}, and DEBUG is off: sessions, signed links and password resets could be forged.",
            hint='Set SECRET_KEY to a long random value, e.g. python -c "import secrets; print(secrets.token_urlsafe(50))".',
            id="telemetry.E001",
        )
    ]

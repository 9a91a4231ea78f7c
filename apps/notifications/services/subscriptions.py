"""Saving subscriptions and their webhook secrets."""

from __future__ import annotations

import secrets

from django.db import transaction

from apps.notifications.models import Channel, Subscription


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def channels_of(subscription: Subscription) -> list[tuple[str, str]]:
    """The subscription's (channel, target) pairs, each once, skipping malformed entries."""
    seen: dict[tuple[str, str], None] = {}
    for channel in subscription.channels or []:
        if isinstance(channel, dict) and channel.get("type") in Channel.values and channel.get("target"):
            seen.setdefault((channel["type"], str(channel["target"])), None)
    return list(seen)


def _needs_secret(subscription: Subscription) -> bool:
    return any(channel == Channel.WEBHOOK for channel, _ in channels_of(subscription)) and not subscription.secret


@transaction.atomic
def subscription_save(*, subscription: Subscription, secret: str | None = None) -> tuple[Subscription, str | None]:
    """Create or update a subscription. Returns it with the webhook secret if this call set one (given, or
    generated because a webhook channel has none yet): the only time the secret is shown."""
    shown = None
    if secret:
        subscription.secret = shown = secret
    elif _needs_secret(subscription):
        subscription.secret = shown = new_secret()
    subscription.full_clean(exclude=["user", "location", "sensor_type", "created_by"])
    subscription.save()
    return subscription, shown


@transaction.atomic
def subscription_rotate_secret(*, subscription: Subscription) -> str:
    """A new webhook secret; signatures made with the old one stop verifying at once."""
    subscription.secret = new_secret()
    subscription.save(update_fields=["secret", "updated_at"])
    return subscription.secret

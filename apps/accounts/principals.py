"""Who a request comes from when it is not a person: a device authenticated by its ingest key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DevicePrincipal:
    """Stands in request.user for a device: authenticated, but holds no role and is never staff."""

    device: Any
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    is_anonymous: bool = False

    @property
    def pk(self) -> None:
        # Never a user id: keeps throttles and logs from mistaking a device for user #N.
        return None

    def __str__(self) -> str:
        return f"device:{self.device.device_id}"

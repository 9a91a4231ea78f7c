from __future__ import annotations

from apps.thresholds.models import BAND_ORDER


def band_order_errors(bands: dict) -> dict[str, list[str]]:
    """Errors keyed by the upper field of each pair out of order: critical_low <= warning_low <
    warning_high <= critical_high, wherever both ends are set."""
    errors: dict[str, list[str]] = {}
    for lower, upper, strict in BAND_ORDER:
        low, high = bands.get(lower), bands.get(upper)
        if low is None or high is None:
            continue
        if (strict and low >= high) or (not strict and low > high):
            relation = "greater than" if strict else "at least"
            errors.setdefault(upper, []).append(f"Must be {relation} {lower} ({low}).")
    return errors

"""Percentiles and summaries of latency samples."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0–100) with linear interpolation between closest ranks; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50.0)


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def summary(values: Sequence[float], digits: int = 2) -> dict[str, float | int | None]:
    """n, p50, p90, p99 and max of a list of samples (milliseconds, usually)."""
    return {
        "n": len(values),
        "p50": rounded(percentile(values, 50), digits),
        "p90": rounded(percentile(values, 90), digits),
        "p99": rounded(percentile(values, 99), digits),
        "max": rounded(max(values) if values else None, digits),
    }


def ratio(numerator: float | None, denominator: float | None, digits: int = 2) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, digits)

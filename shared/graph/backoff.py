"""How long to wait before retrying a Graph request: Retry-After when given, else exponential back-off.

Graph's guidance (https://learn.microsoft.com/graph/throttling): on 429 wait the seconds in
`Retry-After`, then retry; without the header back off exponentially.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRYABLE_STATUS = frozenset({429, 503, 504})
BASE_DELAY_S = 0.5
MAX_BACKOFF_S = 30.0


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds asked by a `Retry-After` header: decimal seconds or an HTTP date; None when absent or invalid."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(seconds, 0.0)


def backoff_delay(attempt: int, *, base: float = BASE_DELAY_S, cap: float = MAX_BACKOFF_S) -> float:
    """Full-jitter exponential back-off for retry number `attempt` (1-based)."""
    ceiling = min(cap, base * (2 ** max(attempt - 1, 0)))
    return random.uniform(ceiling / 2, ceiling)


def retry_after_delay(retry_after: float) -> float:
    """Wait at least what Graph asked, plus a little jitter so throttled callers don't return in step."""
    return retry_after + random.uniform(0.0, min(1.0, 0.1 * retry_after + 0.05))

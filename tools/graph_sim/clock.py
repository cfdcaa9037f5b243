"""A controllable clock: real time plus an offset that tests can advance."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class SimClock:
    """Wall-clock time shifted by `offset` seconds (POST /_sim/clock)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        return time.time() + self.offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def reset(self) -> None:
        self.offset = 0.0

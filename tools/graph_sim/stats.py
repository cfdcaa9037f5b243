"""Counters for GET /_sim/stats."""

from __future__ import annotations

from collections import Counter
from typing import Any


class Stats:
    """`requests` counts every request served, $batch sub-requests included; `batched` counts those
    sub-requests alone (by method and route), so that HTTP requests = requests − batched."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.batched: Counter[str] = Counter()

    def count(self, method: str, template: str, status: int, *, in_batch: bool = False) -> None:
        self.requests[(method, template, status)] += 1
        if in_batch:
            self.batched[f"{method} {template}"] += 1

    def snapshot(self) -> dict[str, Any]:
        by_path: dict[str, dict[str, int]] = {}
        by_status: Counter[str] = Counter()
        for (method, template, status), n in self.requests.items():
            by_path.setdefault(f"{method} {template}", {})[str(status)] = n
            by_status[str(status)] += n
        return {
            "requests": by_path,
            "by_status": dict(by_status),
            "total": sum(self.requests.values()),
            "batched": dict(self.batched),
        }

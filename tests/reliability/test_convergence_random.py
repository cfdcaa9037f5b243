"""Convergence under faults: a seeded random driver works both sides while faults are injected;
after quiescence every in-scope item exists on both sides exactly once and equal, nothing private
or recurring crossed (R05, R06), every failed journal line is explained, no dead letter is left.

Replay a seed: `CONVERGENCE_SEED=1234 pytest tests/reliability -k convergence` (also with SOAK=1).
Short profile in `make test`; `make soak` (SOAK=1, `-m slow`) runs more seeds and operations.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from tests.reliability.driver import Driver
from tests.reliability.support import (
    Harness,
    dead_letter_queues,
    mismatches,
    quiesce,
    snapshot,
    unexplained_failures,
)

SHORT_SEEDS = [14, 16]
SHORT_OPS = 25
SOAK_SEEDS = [3001, 3002, 3003, 3004, 3005]
SOAK_OPS = 150
SOAK = os.environ.get("SOAK") == "1"


def seeds(default: list[int]) -> list[int]:
    if os.environ.get("CONVERGENCE_SEED"):
        return [int(os.environ["CONVERGENCE_SEED"])]
    return default


def without_lost_deletions(snap: dict[str, Any], driver: Driver) -> dict[str, Any]:
    """The snapshot without the ERP copies of items the driver deleted in Outlook (the known bug)."""
    gone = {n for i in driver.items if not i.alive and i.origin == "outlook" for n in [i.name, *i.history]}
    return {
        **snap,
        "erp_meetings": [m for m in snap["erp_meetings"] if m[0] not in gone],
        "erp_tasks": [t for t in snap["erp_tasks"] if t not in gone],
    }


async def run_seed(harness: Harness, seed: int, operations: int) -> dict[str, Any]:
    """Drive `operations` random operations with faults, quiesce, and assert convergence."""
    driver = Driver(harness, seed)
    system = harness.system
    began = time.monotonic()
    try:
        steps = 0
        while sum(driver.ops.values()) < operations and steps < 4 * operations:
            await driver.step()
            steps += 1
        drive_s = time.monotonic() - began
        quiesce_s, problems = await quiesce(system, timeout=90 if SOAK else 45)
        if (
            problems
            and driver.faults["expire"]
            and not mismatches(without_lost_deletions(await snapshot(system), driver))
        ):
            pytest.xfail(
                "BUG (issue 9): an Outlook deletion not yet read when the delta token expires is never carried "
                f"to the ERP: the restarted (full) delta does not report deletions (R20, R30); seed {seed}: {problems}"
            )
        assert not problems, problems

        snap = await snapshot(system)
        erp_names = {m[0] for m in snap["erp_meetings"]} | set(snap["erp_tasks"])
        for item in driver.items:
            if item.kind == "contact":
                continue
            if item.alive:
                assert item.name in erp_names or item.also in erp_names, f"lost: {item}"
            else:
                assert item.name not in erp_names, f"deleted item came back: {item}"
        assert unexplained_failures(await system.journal()) == []
        async with dead_letter_queues(system) as dlq:
            letters = [d for q in dlq.groups().values() for d in await dlq.list(q)]
        assert letters == [], [(d.queue, d.type, d.kind, d.attempts, d.error) for d in letters]
    except BaseException:
        print(f"convergence failed: replay with CONVERGENCE_SEED={seed}; operations: {driver.log}")
        raise
    figures = {
        "seed": seed,
        "operations": sum(driver.ops.values()),
        "faults": dict(driver.faults),
        "meetings": len(snap["erp_meetings"]),
        "tasks": len(snap["erp_tasks"]),
        "contacts": len(snap["outlook_contacts"]),
        "drive_s": round(drive_s, 1),
        "quiesce_s": round(quiesce_s, 1),
    }
    print(f"convergence figures: {figures}")
    return figures


@pytest.mark.parametrize("seed", seeds(SHORT_SEEDS))
async def test_convergence_under_faults_short(harness: Harness, seed: int) -> None:
    await run_seed(harness, seed, SHORT_OPS)


@pytest.mark.slow
@pytest.mark.skipif(not SOAK, reason="the soak profile runs with SOAK=1 (`make soak`)")
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("seed", seeds(SOAK_SEEDS))
async def test_convergence_under_faults_soak(harness: Harness, seed: int) -> None:
    await run_seed(harness, seed, SOAK_OPS)

"""`/api/v1/ops/queues`, `/api/v1/ops/dead-letters/{group}…`: queue depths and dead letters.

`{group}` is `sync-core` or `graph-webhook`; `{key}` a dead letter's message id."""

from __future__ import annotations

from fastapi import APIRouter, Query

from shared.dead_letters import DeadLetter, QueueStats
from sync_core.api.deps import Operator, RuntimeDep
from sync_core.api.schemas import ERRORS, Count
from sync_core.operations import queues

router = APIRouter(prefix="/api/v1/ops", tags=["queues"], responses=ERRORS)


@router.get("/queues", response_model=list[QueueStats])
async def queue_stats(rt: RuntimeDep, _: Operator) -> list[QueueStats]:
    """Depth and consumer count of every work, retry and dead-letter queue (passive declare)."""
    return await queues.queue_stats(rt)


@router.get("/dead-letters/{group}", response_model=list[DeadLetter])
async def dead_letters(
    group: str, rt: RuntimeDep, _: Operator, limit: int = Query(100, ge=1, le=1000)
) -> list[DeadLetter]:
    """Dead letters with their failure (`error`), attempts and original queue; left in the queue."""
    return await queues.list_dead_letters(rt, group, limit=limit)


@router.post("/dead-letters/{group}/replay-all", response_model=Count)
async def replay_all(group: str, rt: RuntimeDep, actor: Operator) -> Count:
    """Put every dead letter back on its original queue (attempts start afresh)."""
    return Count(count=await queues.replay_all(rt, group, actor=actor))


@router.post("/dead-letters/{group}/{key}/replay", response_model=DeadLetter)
async def replay(group: str, key: str, rt: RuntimeDep, actor: Operator) -> DeadLetter:
    """Put one dead letter back on its original queue."""
    return await queues.replay(rt, group, key, actor=actor)


@router.delete("/dead-letters/{group}/{key}", response_model=DeadLetter)
async def discard(group: str, key: str, rt: RuntimeDep, actor: Operator) -> DeadLetter:
    """Drop one dead letter for good."""
    return await queues.discard(rt, group, key, actor=actor)


@router.delete("/dead-letters/{group}", response_model=Count)
async def discard_all(group: str, rt: RuntimeDep, actor: Operator) -> Count:
    """Drop every dead letter of the group."""
    return Count(count=await queues.discard_all(rt, group, actor=actor))

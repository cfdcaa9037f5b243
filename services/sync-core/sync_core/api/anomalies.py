"""`/api/v1/ops/anomalies`, `/api/v1/ops/reconcile…`: what reconciliation found (R26) and its repairs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from sync_core.api.deps import Operator, RuntimeDep
from sync_core.api.schemas import ERRORS, MAX_DB_INT, AnomalyPublic, Count, ReconcileRunPublic, RepairRequest

router = APIRouter(prefix="/api/v1/ops", tags=["anomalies"], responses=ERRORS)


@router.get("/anomalies", response_model=list[AnomalyPublic])
async def anomalies(
    rt: RuntimeDep,
    _: Operator,
    user: str | None = None,
    type: str | None = Query(
        None, description="missing_in_outlook, missing_in_erp, field_drift, broken_link, duplicate"
    ),
    status: str | None = Query(None, description="open or repair_requested"),
    limit: int = Query(500, ge=1, le=5000),
) -> list[AnomalyPublic]:
    """The anomalies of the last reconciliation of each user, each with the repairs that apply."""
    rows = await rt.reconciler.anomalies(user=user, type=type, status=status, limit=limit)
    return [AnomalyPublic.model_validate(r, from_attributes=True) for r in rows]


@router.post("/anomalies/{anomaly_id}/repair", response_model=AnomalyPublic, status_code=202)
async def repair(
    anomaly_id: Annotated[int, Path(ge=1, le=MAX_DB_INT)], request: RepairRequest, rt: RuntimeDep, actor: Operator
) -> AnomalyPublic:
    """Carry out a repair through the normal sync path (a message to the engine); audited.
    Reconcile the user again to see it resolved."""
    row = await rt.reconciler.repair(anomaly_id, request.repair, actor=actor)
    return AnomalyPublic.model_validate(row, from_attributes=True)


@router.get("/reconcile/runs", response_model=list[ReconcileRunPublic])
async def runs(
    rt: RuntimeDep, _: Operator, user: str | None = None, limit: int = Query(50, ge=1, le=1000)
) -> list[ReconcileRunPublic]:
    """Reconciliation runs, newest first: scheduled (`trigger` = `schedule`) or asked by someone."""
    return [
        ReconcileRunPublic.model_validate(r, from_attributes=True)
        for r in await rt.reconciler.runs(user=user, limit=limit)
    ]


@router.post("/reconcile", response_model=Count)
async def reconcile_all(rt: RuntimeDep, _: Operator) -> Count:
    """Reconcile every enabled user now (what the schedule does)."""
    return Count(count=await rt.reconciler.reconcile_all())

"""The ERP REST API, `/api/v1`, every route behind the bearer token."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from erp_connector.api import activities, batch, contacts, groups, partners, representatives
from erp_connector.api.deps import refuse_nul, require_token

api_router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token), Depends(refuse_nul)])
for module in (representatives, partners, groups, contacts, activities, batch):
    api_router.include_router(module.router)

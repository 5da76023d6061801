"""Public routes of risk_manager: limits, the stateless check, state and decisions."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from mastertrade.core.deps import RuntimeDep
from mastertrade.risk.adapters.state import fetch_decisions, fetch_state
from mastertrade.risk.domain import Decision, PositionCheck, RiskLimits, evaluate_position
from mastertrade.risk.settings import RiskSettings

router = APIRouter(prefix="/api/v1", tags=["risk"])


def _settings(request: Request) -> RiskSettings:
    settings: RiskSettings = request.app.state.settings
    return settings


@router.get("/limits")
async def limits(request: Request) -> RiskLimits:
    """The limits in force."""
    return _settings(request).limits()


@router.post("/check")
async def check(request: Request, proposal: PositionCheck) -> Decision:
    """Would a position of this size be allowed now? (amounts finite, as decimal strings)"""
    return evaluate_position(proposal, _settings(request).limits())


@router.get("/state")
async def state(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """Equity, its peak, the breaker and the kill switch."""
    return await fetch_state(runtime.pool, _settings(request).trading_environment)


@router.get("/decisions")
async def decisions(
    request: Request, runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict[str, Any]]:
    """The latest decisions with their reasons."""
    rows = await fetch_decisions(runtime.pool, _settings(request).trading_environment, limit)
    return [{**row, "reasons": json.loads(row["reasons"])} for row in rows]

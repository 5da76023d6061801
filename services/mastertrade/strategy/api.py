"""HTTP routes of strategy_service."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from mastertrade.core.deps import RuntimeDep
from mastertrade.strategy.domain import next_generation_at
from mastertrade.strategy.settings import StrategySettings

router = APIRouter(prefix="/api/v1", tags=["strategies"])

STRATEGIES_QUERY = """
SELECT id, name, status, created_at FROM strategies ORDER BY created_at DESC LIMIT $1
"""


@router.get("/schedule")
async def schedule(request: Request) -> dict[str, Any]:
    """When the next daily generation runs, and how many strategies it makes and keeps."""
    settings: StrategySettings = request.app.state.settings
    return {
        "next_generation_at": next_generation_at(datetime.now(UTC), settings.generation_at()),
        "daily_generation_count": settings.daily_generation_count,
        "max_active_strategies": settings.max_active_strategies,
    }


@router.get("/strategies")
async def strategies(
    runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict[str, Any]]:
    """The latest strategies."""
    rows = await runtime.pool.fetch(STRATEGIES_QUERY, limit)
    return [dict(row) for row in rows]

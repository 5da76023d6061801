"""HTTP routes of strategy_service: strategies, backtests, generation runs and their progress,
goals, and, with the admin bearer token (see `auth.py`), starting a generation on demand and
activating a backtested strategy by hand."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from mastertrade.core.deps import RuntimeDep
from mastertrade.strategy.active_set import activate_strategy
from mastertrade.strategy.auth import AdminDep
from mastertrade.strategy.domain import next_generation_at
from mastertrade.strategy.generation import Scheduler
from mastertrade.strategy.settings import StrategySettings
from mastertrade.strategy.store import (
    RunInProgressError,
    list_backtests,
    list_strategies,
    run_progress,
)

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["strategies"])
Status = Literal["generated", "backtested", "active", "paused", "retired"]


def _settings(request: Request) -> StrategySettings:
    settings: StrategySettings = request.app.state.settings
    return settings


@router.get("/schedule")
async def schedule(request: Request) -> dict[str, Any]:
    """When the next daily generation runs, and how many strategies it makes and keeps."""
    settings = _settings(request)
    return {
        "next_generation_at": next_generation_at(datetime.now(UTC), settings.generation_at()),
        "daily_generation_count": settings.daily_generation_count,
        "max_active_strategies": settings.max_active_strategies,
    }


@router.get("/strategies")
async def strategies(
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    status: Status | None = None,
) -> list[dict[str, Any]]:
    """Strategies of the latest runs, best ranked first, with their backtest's headline figures."""
    return await list_strategies(runtime.pool, status, limit)


@router.get("/backtests")
async def backtests(
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    strategy_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> list[dict[str, Any]]:
    """Backtests, newest first: metrics (decimal strings) and the downsampled equity curve."""
    return await list_backtests(runtime.pool, strategy_id, limit)


@router.get("/generations")
async def generations(runtime: RuntimeDep) -> list[dict[str, Any]]:
    """The latest generation runs with their progress (shards and candidates done)."""
    return await run_progress(runtime.pool)


@router.get("/generations/{run_id}")
async def generation(
    runtime: RuntimeDep, run_id: Annotated[int, Path(ge=1, le=2**63 - 1)]
) -> dict[str, Any]:
    """One run's progress."""
    found = await run_progress(runtime.pool, run_id)
    if not found:
        raise HTTPException(404, f"no generation run {run_id}")
    return found[0]


class GenerationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    candidates: int | None = Field(
        default=None, ge=1, le=100_000, description="candidates (default DAILY_GENERATION_COUNT)"
    )


@router.post("/admin/generations", status_code=202)
async def start_generation(
    request: Request, who: AdminDep, body: GenerationRequest | None = None
) -> dict[str, Any]:
    """Start a generation now (409 while one runs); its progress at /generations/{id}."""
    scheduler: Scheduler = request.app.state.scheduler
    count = (body.candidates if body else None) or _settings(request).daily_generation_count
    try:
        run = await scheduler.start_run(f"api:{uuid.uuid4().hex}", "api", count, who)
    except RunInProgressError as error:
        raise HTTPException(409, f"{error}: follow it at GET /api/v1/generations") from error
    if run is None:
        raise HTTPException(409, "no symbol has enough 1m candles for a walk-forward run yet")
    return {"run_id": run.id, "run_key": run.run_key, "candidates": run.candidates,
            "symbols": list(run.symbols), "progress": f"/api/v1/generations/{run.id}"}  # fmt: skip


# What an activation's outcome answers: (HTTP status, detail); None: 200 with the strategy
REFUSALS = {
    "missing": (404, "no strategy {id}"),
    "not_backtested": (409, "strategy {id} is not backtested (only a backtested, paused or "
                       "retired strategy with a symbol can be activated)"),
    "not_quoted": (409, "strategy {id} trades a pair not quoted in {quote} (QUOTE_ASSET), the "
                   "asset the account's cash is kept in: its buys could not be booked"),
    "full": (409, "{active} strategies are active already (MAX_ACTIVE_STRATEGIES): wait for "
             "the next generation run, which chooses the set again"),
}  # fmt: skip


@router.post("/admin/strategies/{strategy_id}/activate")
async def activate(
    request: Request,
    runtime: RuntimeDep,
    who: AdminDep,
    strategy_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
) -> dict[str, Any]:
    """Make a backtested strategy trade now, beside the active set (up to
    MAX_ACTIVE_STRATEGIES); the next generation run chooses the set again."""
    settings = _settings(request)
    done = await activate_strategy(
        runtime.pool, strategy_id, settings.max_active_strategies, who, settings.quote_asset
    )
    refusal = REFUSALS.get(done.outcome)
    if refusal is not None:
        status, detail = refusal
        raise HTTPException(
            status, detail.format(id=strategy_id, active=done.active, quote=settings.quote_asset)
        )
    if done.outcome == "activated":
        scheduler: Scheduler = request.app.state.scheduler
        scheduler.on_activated()  # the live loop reads the active set again
        await scheduler.refresh_goals()
        logger.info("strategy %d activated by %s", strategy_id, who)
    return {"id": strategy_id, "status": "active", "outcome": done.outcome,
            "active_strategies": done.active}  # fmt: skip


@router.get("/goals")
async def goals(request: Request) -> dict[str, Any]:
    """Targets (monthly return, maximum drawdown, win rate) against the active strategies'."""
    scheduler: Scheduler = request.app.state.scheduler
    active, found = await scheduler.goals()
    return {
        "active_strategies": active,
        "goals": [
            {
                "name": goal.name,
                "target": str(goal.target),
                "achieved": None if goal.achieved is None else str(goal.achieved),
                "met": goal.met,
            }
            for goal in found
        ],
    }

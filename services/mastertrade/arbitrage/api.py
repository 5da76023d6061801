"""HTTP routes of arbitrage_service."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter

from mastertrade.arbitrage.domain import Opportunity, Quotes, evaluate_spread
from mastertrade.core.deps import RuntimeDep

router = APIRouter(prefix="/api/v1", tags=["arbitrage"])

OPPORTUNITIES_KEY = "mastertrade:arbitrage:opportunities"


@router.post("/evaluate")
async def evaluate(quotes: Quotes) -> Opportunity:
    """The net spread of a buy/sell pair of quotes."""
    return evaluate_spread(quotes)


@router.get("/opportunities")
async def opportunities(runtime: RuntimeDep) -> list[dict[str, Any]]:
    """The latest opportunities found (kept in Redis, newest first)."""
    raw = await runtime.redis.lrange(OPPORTUNITIES_KEY, 0, 99)
    return [json.loads(item) for item in raw]

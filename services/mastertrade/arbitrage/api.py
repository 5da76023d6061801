"""HTTP routes of arbitrage_service."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter

from mastertrade.arbitrage.domain import Quotes, SpreadResult, evaluate_spread
from mastertrade.arbitrage.service import OPPORTUNITIES_KEY
from mastertrade.core.deps import RuntimeDep

router = APIRouter(prefix="/api/v1", tags=["arbitrage"])


@router.post("/evaluate")
async def evaluate(quotes: Quotes) -> SpreadResult:
    """The net spread of a buy/sell pair of quotes (decimal strings, finite and positive)."""
    return evaluate_spread(quotes)


@router.get("/opportunities")
async def opportunities(runtime: RuntimeDep) -> list[dict[str, Any]]:
    """The latest opportunities found (kept in Redis, newest first; all of them are stored in
    PostgreSQL and served by data_access_api)."""
    raw = await runtime.redis.lrange(OPPORTUNITIES_KEY, 0, 99)
    return [json.loads(item) for item in raw]

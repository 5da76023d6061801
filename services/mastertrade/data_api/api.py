"""HTTP routes of data_access_api: candles read through a short Redis cache."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Response

from mastertrade.core.deps import RuntimeDep
from mastertrade.market_data.api import IntervalQuery, parse_symbol
from mastertrade.market_data.domain import Candle
from mastertrade.market_data.store import fetch_candles

router = APIRouter(prefix="/api/v1", tags=["historical data"])

CACHE_SECONDS = 5


def cache_key(symbol: str, interval: str, limit: int) -> str:
    return f"mastertrade:data_api:candles:{symbol}:{interval}:{limit}"


@router.get("/candles/{symbol}", response_model=list[Candle])
async def candles(
    symbol: str,
    runtime: RuntimeDep,
    response: Response,
    interval: IntervalQuery = "1m",
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[Candle]:
    """Stored candles, newest first; `X-Cache: hit` when served from Redis."""
    key = cache_key(parse_symbol(symbol), interval, limit)
    cached = await runtime.redis.get(key)
    if cached is not None:
        response.headers["X-Cache"] = "hit"
        return [Candle.model_validate(item) for item in json.loads(cached)]
    found = await fetch_candles(runtime.pool, parse_symbol(symbol), interval, limit)
    payload = json.dumps([candle.model_dump(mode="json") for candle in found])
    await runtime.redis.set(key, payload, ex=CACHE_SECONDS)
    response.headers["X-Cache"] = "miss"
    return found

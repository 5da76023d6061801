"""HTTP routes of market_data_service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request

from mastertrade.core.deps import RuntimeDep
from mastertrade.market_data.domain import INTERVALS, Candle, InvalidSymbolError, normalise_symbol
from mastertrade.market_data.settings import MarketDataSettings
from mastertrade.market_data.store import fetch_candles

router = APIRouter(prefix="/api/v1", tags=["market data"])

IntervalQuery = Annotated[str, Query(pattern="^(" + "|".join(INTERVALS) + ")$")]
LimitQuery = Annotated[int, Query(ge=1, le=1000)]


def parse_symbol(symbol: str) -> str:
    """A path symbol as a normalised pair, or a 422."""
    try:
        return normalise_symbol(symbol)
    except InvalidSymbolError as error:
        raise HTTPException(status_code=422, detail=str(error)) from None


@router.get("/sources")
async def sources(request: Request) -> dict[str, bool]:
    """Which data providers are configured (the offline source needs none)."""
    settings: MarketDataSettings = request.app.state.settings
    return settings.configured_sources()


@router.get("/candles/{symbol}")
async def candles(
    symbol: str, runtime: RuntimeDep, interval: IntervalQuery = "1m", limit: LimitQuery = 100
) -> list[Candle]:
    """Stored candles of a symbol, newest first."""
    return await fetch_candles(runtime.pool, parse_symbol(symbol), interval, limit)

"""HTTP routes of market_data_service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request

from mastertrade.core.deps import RuntimeDep
from mastertrade.market_data.domain import INTERVALS, Candle, InvalidSymbolError, normalise_symbol
from mastertrade.market_data.settings import MarketDataSettings
from mastertrade.market_data.store import fetch_candles

router = APIRouter(prefix="/api/v1", tags=["market data"])

IntervalQuery = Annotated[str, Query(pattern="^(" + "|".join(INTERVALS) + ")$")]
LimitQuery = Annotated[int, Query(ge=1, le=1000)]
SymbolPath = Annotated[str, Path(min_length=1, max_length=32, description="e.g. BTCUSDT")]


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
    request: Request,
    symbol: SymbolPath,
    runtime: RuntimeDep,
    interval: IntervalQuery = "1m",
    limit: LimitQuery = 100,
) -> list[Candle]:
    """Stored candles of a symbol, newest first; a 404 when there are none of the interval and
    the symbol is not collected."""
    pair = parse_symbol(symbol)
    found = await fetch_candles(runtime.pool, pair, interval, limit)
    collected: tuple[str, ...] = request.app.state.settings.market_data_symbols
    if not found and pair not in collected:
        listed = ", ".join(collected)
        raise HTTPException(404, f"no {interval} candles of {pair} are stored, and it is not "
                                 f"collected (MARKET_DATA_SYMBOLS is {listed})")  # fmt: skip
    return found

"""HTTP routes of data_access_api: one read endpoint per stored resource.

Each takes the paging parameters of `pages.page_params` (limit, cursor, start, end, order,
format=json|csv) and its own filters; pages come from PostgreSQL through the Redis page cache
(`X-Cache: hit|miss`). The tables are described in `resources`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from mastertrade.core.connections import DependencyUnavailableError
from mastertrade.core.deps import RuntimeDep
from mastertrade.data_api import resources as r
from mastertrade.data_api.cache import PageCache
from mastertrade.data_api.pages import PageDep, serve
from mastertrade.data_api.settings import DataApiSettings

router = APIRouter(prefix="/api/v1", tags=["historical data"])

SYMBOL = r"^[A-Za-z0-9]{2,20}([/-][A-Za-z0-9]{1,10})?$"
SymbolPath = Annotated[
    str, Path(pattern=SYMBOL, max_length=32, description="a trading pair, e.g. BTCUSDT or btc-usdt")
]
SymbolQuery = Annotated[
    str | None, Query(pattern=SYMBOL, max_length=32, description="e.g. BTCUSDT")
]
Environment = Annotated[Literal["paper", "live"] | None, Query()]
Severity = Annotated[Literal["info", "warning", "critical"] | None, Query()]
SYMBOL_ONLY = frozenset({"symbol"})


def pair(symbol: str | None) -> str | None:
    """btc-usdt and BTC/USDT are BTCUSDT."""
    return None if symbol is None else symbol.replace("/", "").replace("-", "").upper()


async def get_cache(request: Request, runtime: RuntimeDep) -> PageCache:
    """The page cache; one that caches nothing while Redis is away (pages come from
    PostgreSQL all the same)."""
    settings: DataApiSettings = request.app.state.settings
    try:
        client = runtime.redis
    except DependencyUnavailableError:
        client = None
    return PageCache(client, settings.cache_limits())


CacheDep = Annotated[PageCache, Depends(get_cache)]


@router.get("/candles/{symbol}", summary="Candles of a symbol and interval, by open time")
async def candles(
    *,
    request: Request, runtime: RuntimeDep, cache: CacheDep, symbol: SymbolPath, page: PageDep,
    interval: Literal["1m", "5m", "15m", "1h", "4h", "1d"] = "1m",
) -> Response:  # fmt: skip
    filters = {"symbol": pair(symbol), "interval": interval}
    return await serve(
        request, runtime, cache, r.CANDLES, filters=filters, page=page, path_params=SYMBOL_ONLY
    )


@router.get("/trades/{symbol}", summary="Trades of a symbol, by time")
async def trades(
    *, request: Request, runtime: RuntimeDep, cache: CacheDep, symbol: SymbolPath, page: PageDep
) -> Response:
    filters = {"symbol": pair(symbol)}
    return await serve(
        request, runtime, cache, r.TRADES, filters=filters, page=page, path_params=SYMBOL_ONLY
    )


@router.get("/orders", summary="Orders, by creation time")
async def orders(
    *,
    request: Request, runtime: RuntimeDep, cache: CacheDep, page: PageDep,
    symbol: SymbolQuery = None, environment: Environment = None,
    status: Annotated[Literal["new", "submitted", "partially_filled", "filled", "cancelled",
                              "rejected"] | None, Query()] = None,
) -> Response:  # fmt: skip
    filters = {"symbol": pair(symbol), "status": status, "environment": environment}
    return await serve(request, runtime, cache, r.ORDERS, filters=filters, page=page)


@router.get("/fills", summary="Fills, by time")
async def fills(
    *,
    request: Request, runtime: RuntimeDep, cache: CacheDep, page: PageDep,
    client_order_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> Response:  # fmt: skip
    filters = {"client_order_id": client_order_id}
    return await serve(request, runtime, cache, r.FILLS, filters=filters, page=page)


@router.get("/positions", summary="Positions, by environment and symbol")
async def positions(
    *,
    request: Request, runtime: RuntimeDep, cache: CacheDep, page: PageDep,
    environment: Environment = None, symbol: SymbolQuery = None,
) -> Response:  # fmt: skip
    filters = {"environment": environment, "symbol": pair(symbol)}
    return await serve(request, runtime, cache, r.POSITIONS, filters=filters, page=page)


@router.get("/strategies", summary="Strategies, by creation time")
async def strategies(
    *,
    request: Request, runtime: RuntimeDep, cache: CacheDep, page: PageDep,
    status: Annotated[Literal["generated", "backtested", "active", "paused", "retired"] | None,
                      Query()] = None,
) -> Response:  # fmt: skip
    return await serve(request, runtime, cache, r.STRATEGIES, filters={"status": status}, page=page)


@router.get("/backtests", summary="Backtests, by creation time")
async def backtests(
    *,
    request: Request, runtime: RuntimeDep, cache: CacheDep, page: PageDep,
    strategy_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    status: Annotated[Literal["pending", "running", "done", "failed"] | None, Query()] = None,
) -> Response:  # fmt: skip
    filters = {"strategy_id": strategy_id, "status": status}
    return await serve(request, runtime, cache, r.BACKTESTS, filters=filters, page=page)


@router.get("/alerts", summary="Alerts, by creation time")
async def alerts(
    *,
    request: Request, runtime: RuntimeDep, cache: CacheDep, page: PageDep,
    severity: Severity = None,
    status: Annotated[
        Literal["pending", "sent", "partial", "failed", "suppressed"] | None, Query()
    ] = None,
) -> Response:  # fmt: skip
    filters = {"severity": severity, "status": status}
    return await serve(request, runtime, cache, r.ALERTS, filters=filters, page=page)


@router.get("/arbitrage/opportunities", summary="Arbitrage opportunities, by detection time")
async def arbitrage_opportunities(
    *,
    request: Request, runtime: RuntimeDep, cache: CacheDep, page: PageDep,
    kind: Annotated[Literal["triangular", "cross_venue"] | None, Query()] = None,
) -> Response:  # fmt: skip
    return await serve(request, runtime, cache, r.ARBITRAGE, filters={"kind": kind}, page=page)


Subject = Annotated[str | None, Query(min_length=1, max_length=100, description="e.g. BTC")]
Metric = Annotated[
    str | None, Query(min_length=1, max_length=100, description="e.g. sentiment, galaxy_score")
]
KIND_ONLY = frozenset({"kind"})


@router.get("/sentiment", summary="Sentiment observations (Twitter, Reddit, LunarCrush), by time")
async def sentiment(
    *,
    request: Request, runtime: RuntimeDep, cache: CacheDep, page: PageDep,
    source: Annotated[Literal["twitter", "reddit", "lunarcrush"] | None, Query()] = None,
    subject: Subject = None, metric: Metric = None,
) -> Response:  # fmt: skip
    filters = {"kind": "sentiment", "source": source, "subject": subject, "metric": metric}
    return await serve(request, runtime, cache, r.EXTERNAL_METRICS, filters=filters, page=page,
                       path_params=KIND_ONLY)  # fmt: skip


@router.get("/onchain", summary="On-chain observations (Glassnode, Moralis), by time")
async def onchain(
    *,
    request: Request, runtime: RuntimeDep, cache: CacheDep, page: PageDep,
    source: Annotated[Literal["glassnode", "moralis"] | None, Query()] = None,
    subject: Subject = None, metric: Metric = None,
) -> Response:  # fmt: skip
    filters = {"kind": "onchain", "source": source, "subject": subject, "metric": metric}
    return await serve(request, runtime, cache, r.EXTERNAL_METRICS, filters=filters, page=page,
                       path_params=KIND_ONLY)  # fmt: skip

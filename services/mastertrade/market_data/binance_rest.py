"""Binance's REST API for market data: klines, paginated, within the request-weight budget.

`GET /api/v3/klines?symbol&interval&startTime&endTime&limit` answers at most 1000 rows; a
backfill walks forward from its start until a page is short. Every answer's
`X-MBX-USED-WEIGHT-1M` updates the budget, which waits for the next minute rather than go over
it; a 429 pauses every request for its Retry-After, and a 418 (banned) stops with an error
(`BinanceBannedError`, carrying the ban's length, which the collector waits out) instead of
retrying. A symbol Binance does not know (400, code -1121: delisted, renamed or mistyped) raises
`BinanceSymbolError`, which concerns that symbol only: the backfill skips it and goes on with
the others. Public market data needs no key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from mastertrade.market_data.domain.binance import INTERVAL_MS, kline_from_row
from mastertrade.market_data.domain.events import Kline, MalformedEventError, to_millis
from mastertrade.market_data.domain.ratelimit import WeightBudget
from mastertrade.market_data.metrics import MarketMetrics

logger = logging.getLogger("mastertrade.market_data.binance")

KLINES_PATH = "/api/v3/klines"
KLINES_WEIGHT = 2
PAGE_LIMIT = 1000
MAX_ATTEMPTS = 6
DEFAULT_RETRY_AFTER = 60.0
INVALID_SYMBOL = -1121


class BinanceError(Exception):
    """Binance refused a request for good (a bad symbol, a ban); the message says why."""


class BinanceSymbolError(BinanceError):
    """Binance does not know `symbol` (-1121): asking again will not help, fixing the
    configuration will; `message` is Binance's own."""

    def __init__(self, symbol: str, message: str) -> None:
        super().__init__(f"Binance refuses the symbol {symbol}: {message}")
        self.symbol = symbol
        self.message = message


class BinanceBannedError(BinanceError):
    """Binance banned this IP (418) for `seconds`: asking again before then lengthens the ban
    (up to 3 days for repeat offenders)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"Binance banned this IP for {seconds:.0f}s (418); stopping")
        self.seconds = seconds


class BinanceRest:
    """A small Binance REST client for klines."""

    def __init__(
        self,
        base_url: str,
        max_weight_per_minute: int,
        *,
        metrics: MarketMetrics | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.budget = WeightBudget(max_weight_per_minute)
        self.metrics = metrics
        self.clock = clock
        self.sleep = sleep
        self.requests = 0
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout)

    async def close(self) -> None:
        await self._client.aclose()

    async def _wait_for_budget(self, cost: int) -> None:
        while (wait := self.budget.wait_before(cost, self.clock())) > 0:
            logger.info("Binance request weight: waiting %.1fs before the next request", wait)
            await self.sleep(wait)
        self.budget.spend(cost, self.clock())

    def _note_weight(self, response: httpx.Response) -> None:
        header = response.headers.get("X-MBX-USED-WEIGHT-1M")
        if header is not None and header.isdigit():
            self.budget.report(int(header), self.clock())
            if self.metrics is not None:
                self.metrics.used_weight.labels(self.metrics.service).set(int(header))

    async def get(self, path: str, params: dict[str, Any], cost: int) -> Any:
        """GET a JSON answer, within the budget; retries 429, 5xx and network errors."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            await self._wait_for_budget(cost)
            try:
                self.requests += 1
                response = await self._client.get(path, params=params)
            except httpx.TransportError as error:
                logger.warning("Binance %s failed (attempt %d): %s", path, attempt, error)
                await self.sleep(min(2.0**attempt, 30.0))
                continue
            self._note_weight(response)
            if response.status_code in (418, 429):
                self._pause(response)
                continue
            if response.status_code >= 500:
                await self.sleep(min(2.0**attempt, 30.0))
                continue
            if response.status_code != 200:
                raise _refusal(path, params, response)
            return response.json()
        raise BinanceError(f"Binance {path} failed {MAX_ATTEMPTS} times in a row")

    def _pause(self, response: httpx.Response) -> None:
        header = response.headers.get("Retry-After", "")
        seconds = float(header) if header.isdigit() else DEFAULT_RETRY_AFTER
        self.budget.pause(seconds, self.clock())
        if response.status_code == 418:
            raise BinanceBannedError(seconds)
        logger.warning("Binance answered 429: pausing every request for %.0fs", seconds)

    async def klines(
        self, symbol: str, interval: str, start_ms: int, end_ms: int, limit: int = PAGE_LIMIT
    ) -> list[Kline]:
        """One page of klines with open time in [start_ms, end_ms]."""
        params = {"symbol": symbol, "interval": interval, "startTime": start_ms,
                  "endTime": end_ms, "limit": limit}  # fmt: skip
        rows = await self.get(KLINES_PATH, params, KLINES_WEIGHT)
        if not isinstance(rows, list):
            raise MalformedEventError("klines answer is not a JSON array")
        return [kline_from_row(row, symbol, interval) for row in rows]

    async def kline_pages(
        self, symbol: str, interval: str, start_ms: int, end_ms: int
    ) -> AsyncIterator[list[Kline]]:
        """Klines opened from start_ms on and closed before end_ms (and before now), a page at
        a time."""
        step = INTERVAL_MS[interval]
        cursor = start_ms
        while cursor <= end_ms:
            page = await self.klines(symbol, interval, cursor, end_ms)
            before = min(end_ms, int(self.clock() * 1000))
            closed = [k for k in page if to_millis(k.close_time) < before]
            if closed:
                yield closed
            if len(page) < PAGE_LIMIT:
                return
            cursor = to_millis(page[-1].open_time) + step


def _refusal(path: str, params: dict[str, Any], response: httpx.Response) -> BinanceError:
    """The error for an answer that asking again will not change: BinanceSymbolError when it
    is about the symbol asked for (-1121), else BinanceError with Binance's answer."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("code") == INVALID_SYMBOL and "symbol" in params:
        return BinanceSymbolError(str(params["symbol"]), str(body.get("msg", ""))[:200])
    return BinanceError(f"Binance {path} answered {response.status_code}: {response.text[:200]}")

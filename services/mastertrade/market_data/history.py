"""Backfills: simulated history written in bulk, Binance history over REST; both resume.

Each starts where the stored candles of its symbols end (or `days` back on an empty database)
and writes up to now, so a restart after a gap fills exactly the gap and never duplicates rows
(and the writes are upserts anyway). A gap longer than `days` is filled for its last `days`
only, so a service that was off for a year does not start by writing a year. The simulated
market continues from the last stored closes, so its history and live feed join without a jump.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg

from mastertrade.market_data.bulk import write_simulated
from mastertrade.market_data.domain.events import to_millis
from mastertrade.market_data.domain.market import SimulatedMarket
from mastertrade.market_data.domain.sequencing import SequenceGuard
from mastertrade.market_data.domain.simulator import (
    INSTRUMENTS,
    block_table,
    epoch_minute,
    instrument_columns,
    usd_prices,
)
from mastertrade.market_data.store import last_close, last_open_time, upsert_klines

if TYPE_CHECKING:
    from mastertrade.market_data.binance_rest import BinanceRest

logger = logging.getLogger("mastertrade.market_data.history")

CHUNK_MINUTES = 20_000
MINUTES_PER_DAY = 1440
Progress = Callable[[int, int], None]  # (minutes done, minutes in all)


async def _resume_point(pool: asyncpg.Pool, symbols: Sequence[str]) -> int | None:
    lasts = [await last_open_time(pool, symbol, "1m") for symbol in symbols]
    known = [epoch_minute(last) for last in lasts if last is not None]
    return max(known) + 1 if known else None


async def _start_prices(pool: asyncpg.Pool, symbols: Sequence[str]) -> dict[str, float]:
    """Each asset's USD price from the configured symbols' last closes stored (`usd_prices`), so
    every symbol goes on from its own last close, with no jump."""
    closes: dict[str, float] = {}
    for spec in INSTRUMENTS:
        if spec.symbol in symbols:
            close = await last_close(pool, spec.symbol, "1m")
            if close is not None:
                closes[spec.symbol] = float(close)
    return usd_prices(closes)


async def simulated_history(
    pool: asyncpg.Pool,
    *,
    symbols: Sequence[str],
    seed: int,
    days: int,
    now: datetime,
    progress: Progress | None = None,
) -> tuple[SimulatedMarket, int]:
    """Backfill simulated 1m candles up to `now`; the market, positioned to go on live, and
    the number of rows written."""
    columns = instrument_columns(symbols)
    end = epoch_minute(now)
    resume = await _resume_point(pool, symbols)
    earliest = end - days * MINUTES_PER_DAY
    if resume is None:
        market = SimulatedMarket(seed, earliest)
    else:
        prices = await _start_prices(pool, symbols)
        market = SimulatedMarket(seed, max(resume, earliest), prices)
    first, written = market.next_minute, 0
    while market.next_minute < end:
        block = market.generate(min(CHUNK_MINUTES, end - market.next_minute))
        async with pool.acquire() as connection:
            written += await write_simulated(connection, block_table(block, columns))
        if progress is not None:
            progress(market.next_minute - first, end - first)
    return market, written


async def binance_history(
    rest: BinanceRest,
    pool: asyncpg.Pool,
    *,
    symbols: Sequence[str],
    days: int,
    now: datetime,
    guard: SequenceGuard | None = None,
    since: Mapping[str, datetime] | None = None,
) -> int:
    """REST-backfill closed 1m klines of each symbol from the one after `since[symbol]` (the
    newest the stream had seen when it dropped) or else its last stored one (or `days` back)
    up to `now`; returns rows written. After a reconnect the stored ones are no guide: the new
    connection stores the new minutes while the symbols before are backfilled."""
    written = 0
    for symbol in symbols:
        last = (since or {}).get(symbol) or await last_open_time(pool, symbol, "1m")
        earliest = now - timedelta(days=days)
        start = max(last + timedelta(minutes=1), earliest) if last else earliest
        async for page in rest.kline_pages(symbol, "1m", to_millis(start), to_millis(now)):
            written += await upsert_klines(pool, page)
            if guard is not None:
                guard.observe(page[-1])
        logger.info("Binance backfill of %s done", symbol)
    return written

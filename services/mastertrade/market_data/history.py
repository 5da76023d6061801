"""Backfills: simulated history written in bulk, Binance history over REST; both resume.

Each starts where the stored candles of its symbols end (or `days` back on an empty database)
and writes up to now, so a restart after a gap fills exactly the gap and never duplicates rows
(and the writes are upserts anyway). A gap longer than `days` is filled for its last `days`
only, so a service that was off for a year does not start by writing a year. The simulated
market continues from the last stored closes, so its history and live feed join without a jump.
A symbol added to a simulated market that has history already gets its `days` of history too,
ending at the price the market goes on from (`added_history`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg
import numpy as np
import numpy.typing as npt

from mastertrade.market_data.bulk import write_simulated
from mastertrade.market_data.domain.events import to_millis
from mastertrade.market_data.domain.market import SimulatedMarket
from mastertrade.market_data.domain.sequencing import SequenceGuard
from mastertrade.market_data.domain.simulator import (
    INSTRUMENTS,
    Block,
    block_table,
    epoch_minute,
    instrument_columns,
    minute_time,
    usd_prices,
)
from mastertrade.market_data.store import last_close, last_open_time, upsert_klines

if TYPE_CHECKING:
    from mastertrade.market_data.binance_rest import BinanceRest

logger = logging.getLogger("mastertrade.market_data.history")

CHUNK_MINUTES = 20_000
MINUTES_PER_DAY = 1440
Progress = Callable[[int, int], None]  # (minutes done, minutes in all)


async def _last_minutes(pool: asyncpg.Pool, symbols: Sequence[str]) -> dict[str, int]:
    """The epoch minute of each symbol's last stored 1m candle, for those that have one."""
    lasts = {symbol: await last_open_time(pool, symbol, "1m") for symbol in symbols}
    return {symbol: epoch_minute(last) for symbol, last in lasts.items() if last is not None}


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
    stored = await _last_minutes(pool, symbols)
    earliest = end - days * MINUTES_PER_DAY
    written = 0
    if not stored:
        market = SimulatedMarket(seed, earliest)
    else:
        prices = await _start_prices(pool, list(stored))
        market = SimulatedMarket(seed, max(max(stored.values()) + 1, earliest), prices)
        added = [symbol for symbol in symbols if symbol not in stored]
        if added and market.next_minute > earliest:
            written += await added_history(pool, added, seed, earliest, market)
    first = market.next_minute
    while market.next_minute < end:
        block = market.generate(min(CHUNK_MINUTES, end - market.next_minute))
        async with pool.acquire() as connection:
            written += await write_simulated(connection, block_table(block, columns))
        if progress is not None:
            progress(market.next_minute - first, end - first)
    return market, written


async def added_history(
    pool: asyncpg.Pool, added: Sequence[str], seed: int, earliest: int, market: SimulatedMarket
) -> int:
    """History from `earliest` of symbols with none stored, where the others have some: a market
    of their own up to where `market` goes on, its prices scaled so that each added symbol's
    last close is the one `market` goes on from (no jump at the join); rows written. The
    market is generated twice, first for its last closes only: a year takes seconds."""
    columns = instrument_columns(added)
    own = SimulatedMarket(seed, earliest)
    for _ in _blocks(own, market.next_minute):
        pass  # to its end, for its last closes
    scale = market.last_close[columns] / own.last_close[columns]
    logger.info("%s added to the simulated market: writing its history from %s on",
                ", ".join(added), minute_time(earliest))  # fmt: skip
    written = 0
    for block in _blocks(SimulatedMarket(seed, earliest), market.next_minute):
        async with pool.acquire() as connection:
            rows = block_table(_scaled(block, columns, scale), columns)
            written += await write_simulated(connection, rows)
    return written


def _blocks(market: SimulatedMarket, end: int) -> Iterator[Block]:
    while market.next_minute < end:
        yield market.generate(min(CHUNK_MINUTES, end - market.next_minute))


def _scaled(block: Block, columns: Sequence[int], scale: npt.NDArray[np.float64]) -> Block:
    """The block with the prices of `columns` multiplied by `scale` (in whole ticks, at least
    one): the same moves, from another level."""
    prices = {}
    for name in ("open", "high", "low", "close", "vwap"):
        ticks = getattr(block, name).copy()
        ticks[:, columns] = np.maximum(np.rint(ticks[:, columns] * scale), 1)
        prices[name] = ticks
    return dataclasses.replace(block, **prices)


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

"""Backfills: simulated history written in bulk, Binance history over REST; both resume.

The simulated history starts where the stored candles of its symbols end (or `days` back on an
empty database) and writes up to now, so a restart after a gap fills exactly the gap and never
duplicates rows (and the writes are upserts anyway). A gap longer than `days` is filled for its
last `days` only, so a service that was off for a year does not start by writing a year. The
simulated market continues from the last stored closes, so its history and live feed join
without a jump. A symbol behind the others (added to a simulated market that has history
already, or back in it after a while) gets its missing minutes, within `days`, ending at the
price the market goes on from (`behind_history`).

Binance's history is fetched beside the live stream, which stores the present meanwhile, so it
is not resumed from the newest stored candle: each symbol gets every run of minutes missing
from its stored candles, oldest first, from `days` back or from its oldest stored candle when
that is older (`backfill_floors`, `binance_history`): every gap is filled whole (the days cap
is for history only), so a restart or a leader change during a backfill resumes it, and `days`
0 keeps every gap backfill. A reconnect's gap is fetched from the newest candle seen before the
drop.
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
from mastertrade.market_data.store import (
    first_open_time,
    last_close,
    last_open_time,
    missing_minutes,
    upsert_klines,
)

if TYPE_CHECKING:
    from mastertrade.market_data.binance_rest import BinanceRest, BinanceSymbolError

logger = logging.getLogger("mastertrade.market_data.history")

CHUNK_MINUTES = 20_000
MINUTES_PER_DAY = 1440
MINUTE = timedelta(minutes=1)
MERGE_MINUTES = 1000
"""Runs of missing minutes closer than this (Binance's page of klines) are fetched as one."""
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
        newest = max(stored.values())
        current = [symbol for symbol, last in stored.items() if last == newest]
        market = SimulatedMarket(
            seed, max(newest + 1, earliest), await _start_prices(pool, current)
        )
        if market.next_minute <= end:  # else `now` is before what is stored: nothing joins
            for symbol in symbols:
                start = max(stored.get(symbol, earliest - 1) + 1, earliest)
                if start < market.next_minute:
                    written += await behind_history(pool, symbol, seed, start, market)
    first = market.next_minute
    while market.next_minute < end:
        block = market.generate(min(CHUNK_MINUTES, end - market.next_minute))
        async with pool.acquire() as connection:
            written += await write_simulated(connection, block_table(block, columns))
        if progress is not None:
            progress(market.next_minute - first, end - first)
    return market, written


async def behind_history(
    pool: asyncpg.Pool, symbol: str, seed: int, start: int, market: SimulatedMarket
) -> int:
    """The minutes from `start` of a symbol behind the others (added to the market since, or
    back in it after a while) up to where `market` goes on: from a market of its own, its prices
    scaled so that its last close is the one `market` goes on from (no jump at the join; at
    `start`, after a stored past, there may be one); rows written. Written in one transaction,
    so an interrupted write leaves the symbol as behind as it was. The market is generated twice,
    first for its last close only: a year takes seconds."""
    columns = instrument_columns([symbol])
    own = SimulatedMarket(seed, start)
    for _ in _blocks(own, market.next_minute):
        pass  # to its end, for its last close
    scale = market.last_close[columns] / own.last_close[columns]
    logger.info("%s is behind the simulated market: writing its minutes from %s to %s", symbol,
                minute_time(start), minute_time(market.next_minute))  # fmt: skip
    written = 0
    async with pool.acquire() as connection, connection.transaction():
        for block in _blocks(SimulatedMarket(seed, start), market.next_minute):
            rows = block_table(_scaled(block, columns, scale), columns)
            written += await write_simulated(connection, rows)
    logger.info("%s: %d minutes written; it goes on with the others", symbol, written)
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
    floors: Mapping[str, datetime] | None = None,
) -> int:
    """REST-backfill the closed 1m klines each symbol is missing up to `now`; rows written.

    A symbol in `since` (the newest candle the stream had seen when it dropped) from the minute
    after that one, however long ago: after a reconnect the stored ones are no guide, as the
    new connection stores the new minutes meanwhile. Any other symbol gets every run of minutes
    missing from its stored candles from its floor on (`floors`, else `backfill_floors`),
    oldest first: the history a restart or a leader change interrupted while the stream stored
    the present, a reconnect's gap still being retried, the gap since the newest stored candle.
    A symbol Binance refuses (delisted, renamed, mistyped) is logged, counted and skipped: the
    others are backfilled all the same."""
    # here, not above: the simulated source does without an HTTP client
    from mastertrade.market_data.binance_rest import BinanceSymbolError  # noqa: PLC0415

    since = since or {}
    if floors is None:
        floors = await backfill_floors(pool, [s for s in symbols if s not in since], days, now)
    written = 0
    for symbol in symbols:
        try:
            for start, end in await _missing(pool, symbol, now, since, floors):
                written += await _fetch(rest, pool, symbol, (start, end), guard)
        except BinanceSymbolError as error:
            _refused(rest, error)
            continue
        logger.info("Binance backfill of %s done", symbol)
    return written


async def backfill_floors(
    pool: asyncpg.Pool, symbols: Sequence[str], days: int, now: datetime
) -> dict[str, datetime]:
    """The minute each symbol's search for missing candles starts at: `days` before `now`, or
    its oldest stored candle when that is earlier. The days cap is for history only: every gap
    between the stored candles and since the newest is filled, however old and even with `days`
    0, and one a restart cut short (the live stream stored the present meanwhile) is found
    again as such a gap."""
    window = _whole_minute(now - timedelta(days=days))
    floors = {}
    for symbol in symbols:
        first = await first_open_time(pool, symbol, "1m")
        floors[symbol] = window if first is None else min(window, first)
    return floors


async def _missing(
    pool: asyncpg.Pool,
    symbol: str,
    now: datetime,
    since: Mapping[str, datetime],
    floors: Mapping[str, datetime],
) -> list[tuple[datetime, datetime]]:
    """The ranges of minutes to fetch for `symbol`, oldest first, each [start, end)."""
    if symbol in since:
        runs: list[tuple[datetime, datetime | None]] = [(since[symbol] + MINUTE, None)]
    elif symbol in floors:
        runs = await missing_minutes(pool, symbol, floors[symbol], now)
    else:
        return []
    return fetch_ranges(runs, now)


def fetch_ranges(
    runs: Sequence[tuple[datetime, datetime | None]], now: datetime
) -> list[tuple[datetime, datetime]]:
    """Runs of missing minutes (an open end: up to `now`) as the ranges to ask Binance for:
    those with a minute closed by `now`, and runs fewer than MERGE_MINUTES apart fetched as one
    (re-fetching the stored minutes between costs less than a request per run: a history full
    of holes is read in pages, not a request per hole)."""
    ranges: list[tuple[datetime, datetime]] = []
    for start, stop in runs:
        end = min(stop or now, now)
        if start + MINUTE > end:
            continue
        if ranges and start - ranges[-1][1] < MERGE_MINUTES * MINUTE:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((start, end))
    return ranges


async def _fetch(
    rest: BinanceRest,
    pool: asyncpg.Pool,
    symbol: str,
    span: tuple[datetime, datetime],
    guard: SequenceGuard | None,
) -> int:
    """The klines of `symbol` opened in [start, end) and closed, stored; rows written."""
    written = 0
    start, end = span
    async for page in rest.kline_pages(symbol, "1m", to_millis(start), to_millis(end)):
        written += await upsert_klines(pool, page)
        if guard is not None:
            guard.observe(page[-1])
    return written


def _whole_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _refused(rest: BinanceRest, error: BinanceSymbolError) -> None:
    if rest.metrics is not None:
        rest.metrics.refused_symbol("binance", error.symbol)
    logger.error("Binance refuses the symbol %s (%s): it is delisted, renamed or mistyped, and "
                 "its candles are not collected; the other symbols go on. Fix "
                 "MARKET_DATA_SYMBOLS.", error.symbol, error.message)  # fmt: skip

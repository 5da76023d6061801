"""Binance backfills that must not lose a gap, against the local fake Binance and a real
PostgreSQL: with MARKET_DATA_BACKFILL_DAYS=0 (the days cap is for history into an empty
symbol, not for a gap after the newest stored candle), and after a restart or a leader change
during a backfill, while the live stream had stored the present (the backfill resumed from the
newest stored candle, skipping the rest of the history for good)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from mastertrade.market_data.binance_rest import BinanceRest
from mastertrade.market_data.domain.binance import kline_from_row
from mastertrade.market_data.history import binance_history, fetch_ranges
from mastertrade.market_data.store import upsert_klines
from tests.fakes.binance import FakeBinance, kline_row
from tests.services.test_market_data_binance import T0, T0_MS, until
from tests.services.test_market_data_refusals import collecting

pytestmark = pytest.mark.infra
MINUTE = timedelta(minutes=1)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    server = FakeBinance(history_start_ms=T0_MS, history_end_ms=T0_MS + 3000 * 60_000)
    await server.start()
    yield server
    await server.stop()


async def store_minutes(pool: asyncpg.Pool, symbol: str, start_ms: int, minutes: range) -> None:
    """The fake's candles of those minutes after `start_ms`, as a backfill or the stream
    would have stored them."""
    rows = [kline_row(symbol, start_ms + minute * 60_000) for minute in minutes]
    await upsert_klines(pool, [kline_from_row(row, symbol, "1m") for row in rows])


async def minutes_stored(pool: asyncpg.Pool, symbol: str, start: datetime) -> list[int]:
    rows = await pool.fetch(
        "SELECT open_time FROM candles WHERE symbol = $1 ORDER BY open_time", symbol
    )
    return [(row["open_time"] - start) // MINUTE for row in rows]


async def test_backfill_days_0_still_fills_every_gap_after_what_is_stored(
    pool: asyncpg.Pool, fake: FakeBinance
) -> None:
    """Days 0: no history into an empty symbol, but the gap since the newest stored candle
    (the service was off) and a reconnect's gap are filled all the same."""
    await store_minutes(pool, "BTCUSDT", T0_MS, range(50))
    rest = BinanceRest(fake.rest_url, 6000)
    try:
        now = T0 + 100 * MINUTE
        symbols = ["BTCUSDT", "ETHUSDT"]
        assert await binance_history(rest, pool, symbols=symbols, days=0, now=now) == 50
        seen = {"BTCUSDT": T0 + 99 * MINUTE}  # the stream dropped after minute 99
        later = T0 + 150 * MINUTE
        await binance_history(rest, pool, symbols=symbols, days=0, now=later, since=seen)
    finally:
        await rest.close()
    assert await minutes_stored(pool, "BTCUSDT", T0) == list(range(150))
    assert await minutes_stored(pool, "ETHUSDT", T0) == []  # nothing stored: no history
    assert {request["symbol"] for request in fake.requests} == {"BTCUSDT"}


async def test_a_gap_fill_cut_short_resumes_after_a_restart_with_backfill_days_0(
    pool: asyncpg.Pool, fake: FakeBinance
) -> None:
    """Off from minute 50 to 119, then back: the stream stored minutes 120-149 while the gap
    was being filled, and a restart cut the fill short. The rest of the gap is no history
    (days 0 asks for none) but a gap between stored candles: filled after the restart."""
    for minutes in (range(50), range(120, 150)):
        await store_minutes(pool, "BTCUSDT", T0_MS, minutes)
    rest = BinanceRest(fake.rest_url, 6000)
    try:
        now = T0 + 150 * MINUTE
        written = await binance_history(rest, pool, symbols=["BTCUSDT"], days=0, now=now)
    finally:
        await rest.close()
    assert written == 70
    assert await minutes_stored(pool, "BTCUSDT", T0) == list(range(150))


async def test_a_backfill_cut_short_resumes_at_its_first_missing_minute_oldest_first(
    pool: asyncpg.Pool, fake: FakeBinance
) -> None:
    """Stopped after 1000 minutes of history, while the stream had stored minutes 1500-1799
    (then dropped, its gap not yet filled) and 2990-2999: every missing minute of the window is
    fetched after the restart, oldest first, holes close together in one range of pages."""
    for minutes in (range(1000), range(1500, 1800), range(2990, 3000)):
        await store_minutes(pool, "BTCUSDT", T0_MS, minutes)
    now = T0 + 3000 * MINUTE
    rest = BinanceRest(fake.rest_url, 6000)
    try:
        written = await binance_history(rest, pool, symbols=["BTCUSDT"], days=3, now=now)
    finally:
        await rest.close()
    assert written == 500 + 1190
    assert await minutes_stored(pool, "BTCUSDT", T0) == list(range(3000))
    starts = [int(request["startTime"]) for request in fake.requests]
    assert starts == sorted(starts)
    # the window before T0 (nothing there), then minutes 1000-2989 in two pages, not one per hole
    assert len(fake.requests) == 3


def test_runs_of_missing_minutes_close_together_are_fetched_as_one_range() -> None:
    now = T0 + 10_000 * MINUTE
    at = {minute: T0 + minute * MINUTE for minute in (0, 5, 10, 20, 2000, 2100, 9999, 10_000)}
    runs = [(at[0], at[5]), (at[10], at[20]), (at[2000], at[2100]), (at[9999], None)]
    assert fetch_ranges(runs, now) == [(at[0], at[20]), (at[2000], at[2100]), (at[9999], now)]
    assert fetch_ranges([(at[10_000], None)], now) == []  # the present minute is not closed


async def test_a_restart_during_the_history_backfill_fills_what_the_stream_left_behind(
    pool: asyncpg.Pool, rabbitmq_url: str
) -> None:
    """The service as it starts: the first hour of the day's history was stored, then the
    previous leader went; its successor stored the last five minutes live before this one
    took over. The backfill fills the 55 minutes between, not only those after the newest."""
    now_ms = int(time.time() * 1000) // 60_000 * 60_000
    start_ms = now_ms - 120 * 60_000
    fake = FakeBinance(history_start_ms=start_ms, history_end_ms=now_ms)
    await fake.start()
    for minutes in (range(60), range(115, 120)):
        await store_minutes(pool, "BTCUSDT", start_ms, minutes)
    try:
        async with collecting(pool, rabbitmq_url, fake, "BTCUSDT") as (collectors, _):
            await until(lambda: collectors.status()["phase"] == "live")
    finally:
        await fake.stop()
    start = datetime.fromtimestamp(start_ms / 1000, tz=UTC)
    assert (await minutes_stored(pool, "BTCUSDT", start))[:120] == list(range(120))

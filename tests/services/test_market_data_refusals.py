"""Binance refusing one symbol, a gap backfill that fails, and a broker outage, against the local
fake Binance and a real PostgreSQL, Redis and RabbitMQ: the other symbols are backfilled and go
live, the failed gap is filled once Binance answers again, and a quote left behind by the
outage ages instead of looking fresh."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import aio_pika
import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CollectorRegistry

from mastertrade.core.bus import declare_topology
from mastertrade.core.prices import fetch_book
from mastertrade.market_data.binance_rest import BinanceRest
from mastertrade.market_data.collectors import (
    BackfillPlan,
    MarketDataCollectors,
    backfill_plan,
)
from mastertrade.market_data.domain.events import BookTicker
from mastertrade.market_data.history import binance_history
from mastertrade.market_data.metrics import MarketMetrics
from mastertrade.market_data.settings import MarketDataSettings
from mastertrade.market_data.sink import MarketSink
from mastertrade.market_data.writer import Connections, EventWriter
from mastertrade_model.topology import MARKET_DATA
from tests.fakes.binance import FakeBinance, kline_frame, trade_frame
from tests.services.conftest import REDIS_TEST_URL
from tests.services.test_market_data_binance import (
    T0,
    T0_MS,
    live_sink,
    sample,
    stream_for,
    until,
)

pytestmark = pytest.mark.infra


class Delisting(FakeBinance):
    """A Binance that no longer knows OLDUSDT, as it answers for a delisted symbol."""

    async def _klines(self, request: web.Request) -> web.Response:
        if request.query.get("symbol") == "OLDUSDT":
            self.requests.append(dict(request.query))
            return self._error(400, -1121, "Invalid symbol.")
        return await super()._klines(request)


def symbols_asked(fake: FakeBinance) -> dict[str, int]:
    asked: dict[str, int] = {}
    for request in fake.requests:
        asked[request["symbol"]] = asked.get(request["symbol"], 0) + 1
    return asked


@contextlib.asynccontextmanager
async def collecting(
    pool: asyncpg.Pool, rabbitmq_url: str, fake: FakeBinance, symbols: str
) -> AsyncIterator[tuple[MarketDataCollectors, CollectorRegistry]]:
    """The service's collectors, as its lifespan runs them, on the fake Binance."""
    connection = await aio_pika.connect(rabbitmq_url)
    redis = aioredis.Redis.from_url(REDIS_TEST_URL)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await declare_topology(channel, [MARKET_DATA], [])
        settings = MarketDataSettings(
            market_data_source="binance", market_data_symbols=symbols,
            market_data_backfill_days=1, binance_rest_url=fake.rest_url,
            binance_ws_url=fake.ws_url,
        )  # fmt: skip
        registry = CollectorRegistry()
        runtime: Any = SimpleNamespace(
            spec=SimpleNamespace(name="test"), pool=pool, redis=redis, channel=channel,
            metrics=SimpleNamespace(registry=registry),
        )  # fmt: skip
        collectors = MarketDataCollectors(settings, runtime)
        collectors.start()
        try:
            yield collectors, registry
        finally:
            await collectors.stop()
    finally:
        await redis.aclose()
        await connection.close()


async def test_a_symbol_binance_refuses_is_skipped_and_the_others_go_live(
    pool: asyncpg.Pool, rabbitmq_url: str
) -> None:
    now_ms = int(time.time() * 1000) // 60_000 * 60_000
    fake = Delisting(history_start_ms=now_ms - 120 * 60_000, history_end_ms=now_ms)
    await fake.start()
    try:
        async with collecting(pool, rabbitmq_url, fake, "BTCUSDT,OLDUSDT,ETHUSDT") as (
            collectors,
            registry,
        ):
            await until(lambda: collectors.status()["phase"] == "live")
            assert fake.open_connections == 1  # the live stream is up
            assert symbols_asked(fake) == {"BTCUSDT": 1, "OLDUSDT": 1, "ETHUSDT": 1}
            counts = await pool.fetch("SELECT symbol, count(*) AS n FROM candles GROUP BY 1")
            assert {r["symbol"]: r["n"] for r in counts} == {"BTCUSDT": 120, "ETHUSDT": 120}
            refused = {"source": "binance", "symbol": "OLDUSDT"}
            assert sample(registry, "mastertrade_market_data_refused_symbols_total",
                          **refused) == 1  # fmt: skip
            await fake.push(trade_frame("ETHUSDT", 1, "2500.5", "1", now_ms),
                            stream="ethusdt@trade")  # fmt: skip
            await until(lambda: collectors.sink.written == 1)
            assert collectors.status()["last_error"] == ""
    finally:
        await fake.stop()


async def test_the_live_stream_opens_while_the_backfill_cannot(
    pool: asyncpg.Pool, rabbitmq_url: str
) -> None:
    """Banned from REST (418) at start: the backfill waits the ban out, the live data flows."""
    now_ms = int(time.time() * 1000) // 60_000 * 60_000
    fake = FakeBinance(history_start_ms=now_ms - 120 * 60_000, history_end_ms=now_ms)
    await fake.start()
    fake.ban(120)
    try:
        async with collecting(pool, rabbitmq_url, fake, "BTCUSDT") as (collectors, _):
            await until(lambda: fake.open_connections == 1, timeout=10)
            await until(lambda: "banned" in collectors.status()["last_error"])
            await fake.push(trade_frame("BTCUSDT", 1, "60000.5", "1", now_ms),
                            stream="btcusdt@trade")  # fmt: skip
            await until(lambda: collectors.sink.written == 1)
            assert collectors.status()["phase"] != "live"  # its history is not there yet
    finally:
        await fake.stop()


async def stored_minutes(pool: asyncpg.Pool) -> list[int]:
    rows = await pool.fetch("SELECT open_time FROM candles WHERE symbol='BTCUSDT' ORDER BY 1")
    return [int((r["open_time"] - T0).total_seconds() // 60) for r in rows]


async def test_a_gap_backfill_that_fails_is_tried_again_until_the_gap_is_filled(
    pool: asyncpg.Pool, rabbitmq_url: str
) -> None:
    """PostgreSQL away (or a 418) during the backfill after a reconnect left the hole for good."""
    fake = FakeBinance(history_start_ms=T0_MS, history_end_ms=T0_MS + 20 * 60_000)
    await fake.start()
    rest = BinanceRest(fake.rest_url, 6000)
    metrics = MarketMetrics(CollectorRegistry(), "test")
    calls: list[dict[str, datetime]] = []

    async def on_gap(since: Mapping[str, datetime]) -> None:
        calls.append(dict(since))
        if len(calls) == 2:
            raise ConnectionError("PostgreSQL is away")
        if since:
            await binance_history(rest, pool, symbols=["BTCUSDT"], days=1,
                                  now=T0 + timedelta(minutes=20), since=since)  # fmt: skip

    try:
        async with live_sink(pool, rabbitmq_url, metrics) as (sink, _):
            stream, _ = stream_for(fake, sink, metrics)
            stream.on_gap, stream.retry_pause = on_gap, lambda error: 0.5
            task = asyncio.create_task(stream.run())
            try:
                await until(lambda: fake.open_connections == 1 and len(calls) == 1)
                await fake.push(kline_frame("BTCUSDT", T0_MS), stream="btcusdt@kline_1m")
                await until(lambda: sink.written == 1)
                await fake.drop_connections()  # minutes 1..9 are missed
                await until(lambda: len(calls) >= 2)  # and their backfill fails

                async def filled() -> bool:
                    return await stored_minutes(pool) == list(range(20))

                await until(filled, timeout=10)
                assert calls[2] == {"BTCUSDT": T0}  # tried again from where the gap began
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        await rest.close()
        await fake.stop()


def test_a_gap_found_while_the_history_waits_never_moves_a_start_past_what_was_stored() -> None:
    """The history (from what was stored at start-up) failed, a 418 say, and the stream dropped
    while it waited: the retry must still look for missing minutes from where the start-up
    floor was, not from the drop (minutes between the two were never fetched)."""
    at = {minute: T0 + timedelta(minutes=minute) for minute in range(10)}
    window = T0 - timedelta(days=1)  # nothing stored: `days` back
    floors = {"BTCUSDT": at[1], "ETHUSDT": window, "BNBUSDT": at[6]}
    found = {"BTCUSDT": at[3], "ETHUSDT": at[3], "BNBUSDT": at[1], "XRPUSDT": at[2]}
    assert backfill_plan(tuple(floors), floors, found, live=False) == BackfillPlan(
        ("BTCUSDT", "ETHUSDT", "BNBUSDT"),
        floors={
            "BTCUSDT": at[1],  # stored earlier than the drop
            "ETHUSDT": window,  # nothing stored: the whole history, whatever the stream saw
            "BNBUSDT": at[2],  # the gap goes further back
            "XRPUSDT": at[3],
        },
    )


def test_a_gap_in_one_streaming_symbol_fetches_that_symbol_only() -> None:
    """Live, the other symbols are streaming: their start-up floors (days old) must not send
    them back there."""
    floors = {"BTCUSDT": T0, "ETHUSDT": T0 - timedelta(days=1)}
    skipped = {"BTCUSDT": T0 + timedelta(days=6)}
    assert backfill_plan(("BTCUSDT", "ETHUSDT"), floors, skipped, live=True) == BackfillPlan(
        ("BTCUSDT",), since=skipped
    )


async def test_a_quote_frozen_by_a_broker_outage_ages_instead_of_looking_fresh(
    pool: asyncpg.Pool,
) -> None:
    redis = aioredis.Redis.from_url(REDIS_TEST_URL)

    def channel() -> Any:
        raise ConnectionError("RabbitMQ is down")

    metrics = MarketMetrics(CollectorRegistry(), "test")
    writer = EventWriter(Connections(lambda: pool, lambda: redis, channel), metrics, "simulated")
    sink = MarketSink(writer, metrics, batch_size=5, flush_interval=0.05)
    sink.start()
    try:
        first_submitted = time.time()
        for update_id in range(1, 16):  # one ticker every 0.2 s
            price = Decimal(60000 - update_id)
            sink.submit(BookTicker("SIMXUSDT", update_id, price, Decimal(1), price + 1,
                                   Decimal(1), T0 + timedelta(days=400)), "simulated")  # fmt: skip
            await asyncio.sleep(0.2)
        book = await fetch_book(redis, "SIMXUSDT")
        # the oldest batch is written again and again: its quote is as old as it is
        assert book.bid >= Decimal(59995)
        assert book.seen_ms is not None
        assert book.seen_ms / 1000 <= first_submitted + 1.2
        assert time.time() - book.seen_ms / 1000 >= 2.0
    finally:
        await asyncio.wait_for(sink.stop(), 10)
        await redis.delete("mastertrade:book:SIMXUSDT", "market:book:SIMXUSDT")
        await redis.aclose()

"""market_data_service as it runs: the app's lifespan with real PostgreSQL, RabbitMQ and Redis,
the simulated market by default (history first, then live) and Binance (the local fake)."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aio_pika
import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from mastertrade.core import leadership
from mastertrade.core.bus import declare_topology
from mastertrade.core.prices import fetch_book
from mastertrade.core.settings import load_settings
from mastertrade.market_data import ingest as ingest_module
from mastertrade.market_data.app import create_app
from mastertrade.market_data.domain.events import Kline, to_message, to_millis
from mastertrade.market_data.domain.market import SimulatedMarket
from mastertrade.market_data.history import simulated_history
from mastertrade.market_data.ingest import CandleIngest
from mastertrade.market_data.settings import MarketDataSettings
from mastertrade.market_data.store import upsert_klines
from mastertrade_model.topology import MARKET_DATA
from tests.fakes.binance import FakeBinance, trade_frame
from tests.services.helpers import running

pytestmark = pytest.mark.infra


def settings_for(
    service_env: dict[str, str], database_url: str, **extra: str
) -> MarketDataSettings:
    # a loaded shared machine can take more than the session's 1 s to answer a health ping
    env = {**service_env, "DATABASE_URL": database_url, "DEPENDENCY_TIMEOUT": "5", **extra}
    return load_settings(MarketDataSettings, "market_data_service", environ=env)


async def wait_for(
    client: httpx.AsyncClient, check: str, timeout: float = 60.0
) -> dict[str, object]:
    """Poll /health until its market_data section's phase is `check`."""
    deadline = time.monotonic() + timeout
    while True:
        body = (await client.get("/health")).json()
        if body.get("market_data", {}).get("phase") == check:
            return dict(body)
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.2)


async def candle_queue(
    rabbitmq_url: str,
) -> tuple[aio_pika.abc.AbstractConnection, aio_pika.abc.AbstractQueue]:
    connection = await aio_pika.connect(rabbitmq_url)
    channel = await connection.channel()
    await declare_topology(channel, [MARKET_DATA], [])
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(MARKET_DATA.name, routing_key="candle.#")
    return connection, queue


async def first_message(queue: aio_pika.abc.AbstractQueue) -> aio_pika.abc.AbstractIncomingMessage:
    deadline = time.monotonic() + 15
    while (message := await queue.get(fail=False)) is None:
        assert time.monotonic() < deadline, "no candle published"
        await asyncio.sleep(0.1)
    return message


async def test_an_empty_database_gets_history_then_the_live_simulated_market(
    market_db: str, service_env: dict[str, str], rabbitmq_url: str
) -> None:
    settings = settings_for(service_env, market_db, MARKET_DATA_BACKFILL_DAYS="1",
                            MARKET_DATA_SPEED="1200")  # fmt: skip
    connection, queue = await candle_queue(rabbitmq_url)
    try:
        app = create_app(settings)
        async with running(app) as client:
            health = await wait_for(client, "live")
            assert health["status"] == "healthy"
            section = health["market_data"]
            assert isinstance(section, dict) and section["source"] == "simulated"
            assert section["collectors"]["simulated"] == "on"
            assert section["collectors"]["twitter"] == "off (no key)"
            assert section["history_rows_written"] == 1440 * 5
            message = await first_message(queue)
            body = json.loads(message.body)
            assert message.routing_key == f"candle.1m.{body['symbol']}"
            assert isinstance(body["close"], str) and Decimal(body["close"]) > 0
            metrics = (await client.get("/metrics")).text
            assert 'mastertrade_market_data_collector_enabled{collector="simulated"' in metrics
            assert "mastertrade_market_data_events_total{" in metrics
            candles = (await client.get("/api/v1/candles/ETHBTC?limit=2")).json()
            assert len(candles) == 2
            unknown = await client.get("/api/v1/candles/ZZZZZZUSDT")
            assert unknown.status_code == 404 and "ETHBTC" in unknown.json()["detail"]
            huge = await client.get(f"/api/v1/candles/{'A' * 20_000}")
            assert huge.status_code == 422 and len(huge.content) < 1000
            # the executor's quote: stamped with when it was written, so its age shows a
            # stopped feed though the market's own time runs 1200 times faster than the clock
            redis = aioredis.Redis.from_url(service_env["REDIS_URL"])
            try:
                book = await fetch_book(redis, "BTCUSDT")
            finally:
                await redis.aclose()
            assert book.seen_ms is not None and abs(time.time() * 1000 - book.seen_ms) < 30_000
    finally:
        await connection.close()
    async with asyncpg.create_pool(market_db, min_size=1, max_size=2) as pool:
        per_symbol = await pool.fetch(
            "SELECT symbol, count(*) AS n, count(DISTINCT open_time) AS d FROM candles "
            "GROUP BY symbol"
        )
        assert len(per_symbol) == 5
        assert all(row["n"] == row["d"] > 1440 for row in per_symbol)
        assert await pool.fetchval("SELECT count(*) FROM trades") > 0


async def test_one_replica_collects_and_another_takes_over_when_it_goes(
    market_db: str, service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replicas of the simulated market: one collects, the other stands by (writing
    nothing: two would write each minute with different prices); the first stopped, the
    second takes the collector lock and goes live."""
    monkeypatch.setattr(leadership, "STANDBY_SECONDS", 0.3)
    settings = settings_for(service_env, market_db, MARKET_DATA_BACKFILL_DAYS="1",
                            MARKET_DATA_SPEED="1200")  # fmt: skip
    first, second = AsyncExitStack(), AsyncExitStack()
    async with first, second:
        leader = await first.enter_async_context(running(create_app(settings)))
        await wait_for(leader, "live")
        standby = await second.enter_async_context(running(create_app(settings)))
        await wait_for(standby, "standby")
        await asyncio.sleep(1.0)  # the leader goes on writing; the standby does not
        waiting = (await standby.get("/health")).json()["market_data"]
        led = (await leader.get("/health")).json()["market_data"]
        await first.aclose()  # the leader's pod goes
        took_over = (await wait_for(standby, "live"))["market_data"]
    assert (led["role"], waiting["role"]) == ("leader", "standby")
    assert waiting["events_written"] == waiting["history_rows_written"] == 0
    assert led["events_written"] > 0
    assert isinstance(took_over, dict) and took_over["role"] == "leader"


async def test_a_restart_after_a_gap_fills_exactly_the_gap_and_joins_the_prices(
    market_db: str, service_env: dict[str, str]
) -> None:
    now = datetime.now(UTC)
    async with asyncpg.create_pool(market_db, min_size=1, max_size=2) as pool:
        # the service ran until three hours ago, then was away
        await simulated_history(pool, symbols=["BTCUSDT", "ETHUSDT"], seed=1, days=1,
                                now=now - timedelta(hours=3))  # fmt: skip
        before = await pool.fetchrow(
            "SELECT max(open_time) AS last, count(*) AS n FROM candles WHERE symbol = 'BTCUSDT'"
        )
        assert before is not None
        settings = settings_for(service_env, market_db, MARKET_DATA_SYMBOLS="BTCUSDT,ETHUSDT",
                                MARKET_DATA_SPEED="1")  # fmt: skip
        async with running(create_app(settings)) as client:
            health = await wait_for(client, "live")
        rows = await pool.fetch(
            "SELECT open_time, open, close FROM candles WHERE symbol = 'BTCUSDT' "
            "AND open_time >= $1 ORDER BY open_time",
            before["last"],
        )
    section = health["market_data"]
    assert isinstance(section, dict)
    gap = section["history_rows_written"]
    assert 2 * 179 <= gap <= 2 * 181  # three hours of two symbols, give or take the minute
    times = [row["open_time"] for row in rows]
    assert times == [before["last"] + timedelta(minutes=i) for i in range(len(times))]
    assert all(rows[i + 1]["open"] == rows[i]["close"] for i in range(len(rows) - 1))


async def test_binance_mode_backfills_streams_and_survives_malformed_frames(
    market_db: str, service_env: dict[str, str]
) -> None:
    now_ms = to_millis(datetime.now(UTC)) // 60_000 * 60_000
    fake = FakeBinance(history_start_ms=now_ms - 1500 * 60_000, history_end_ms=now_ms)
    await fake.start()
    try:
        settings = settings_for(
            service_env, market_db, MARKET_DATA_SOURCE="binance", MARKET_DATA_SYMBOLS="BTCUSDT",
            MARKET_DATA_BACKFILL_DAYS="1", BINANCE_REST_URL=fake.rest_url,
            BINANCE_WS_URL=fake.ws_url, MARKET_DATA_FLUSH_INTERVAL="0.05",
        )  # fmt: skip
        async with running(create_app(settings)) as client:
            health = await wait_for(client, "live")
            section = health["market_data"]
            assert isinstance(section, dict) and section["collectors"]["binance"] == "on"
            assert section["history_rows_written"] in {1439, 1440}  # a day back, to the minute
            deadline = time.monotonic() + 15
            while fake.open_connections == 0:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert fake.requests[0]["symbol"] == "BTCUSDT"
            await fake.push("{garbage", b"\x00", trade_frame("BTCUSDT", 1, "Infinity", "1", now_ms))
            await fake.push(trade_frame("BTCUSDT", 2, "42000.5", "0.01", now_ms),
                            stream="btcusdt@trade")  # fmt: skip
            deadline = time.monotonic() + 15
            while True:
                metrics = (await client.get("/metrics")).text
                if 'table="trades"} 1.0' in metrics:
                    break
                assert time.monotonic() < deadline, metrics
                await asyncio.sleep(0.1)
            assert ('mastertrade_market_data_rejected_total{reason="malformed",'
                    'service="market_data_service",source="binance"} 3.0') in metrics  # fmt: skip
            connected = 'source_connected{service="market_data_service",source="binance"} 1.0'
            assert f"mastertrade_market_data_{connected}" in metrics
            assert (await client.get("/health")).status_code == 200
    finally:
        await fake.stop()


async def test_candles_from_the_broker_are_stored_once_and_malformed_ones_dead_lettered(
    market_db: str, rabbitmq_url: str
) -> None:
    market = SimulatedMarket(3, 29_000_000)
    klines = list(market.generate(40).klines())  # 200 candles
    bodies = [json.dumps(to_message(k)).encode() for k in klines]
    bodies.insert(17, b'{"type": "candle", "symbol": "BTCUSDT", "close": "NaN"}')
    # well-formed JSON the candles table could not hold, or should not: each dead-lettered
    # alone (a trade count beyond BIGINT used to fail its whole batch, handed back for ever)
    for bad in ({"trade_count": 2**70}, {"symbol": "btc usd!!"}, {"interval": "weird"}):
        bodies.insert(30, json.dumps(to_message(klines[5]) | bad).encode())
    bodies.append(json.dumps(to_message(klines[0])).encode())  # a redelivered duplicate
    assert await ingest_all(rabbitmq_url, market_db, bodies, timeout=20) == (201, 4, 200, 0)


async def test_a_candle_the_database_would_refuse_is_dead_lettered_and_its_batch_stored(
    market_db: str, rabbitmq_url: str
) -> None:
    """A time with no UTC equivalent (asyncpg's conversion overflows at write time) and a price
    of more decimal places than PostgreSQL's numeric keeps both parsed, and failed their whole
    batch at every redelivery: the queue stood still for good."""
    klines = list(SimulatedMarket(3, 29_000_000).generate(10).klines())  # 50 candles
    bodies = [json.dumps(to_message(k)).encode() for k in klines]
    overflowing = {"open_time": "9999-12-31T23:00:00-05:00",
                   "close_time": "9999-12-31T23:00:59.999-05:00"}  # fmt: skip
    for bad in (overflowing, {"quote_volume": "1." + "0" * 16384}):
        bodies.insert(20, json.dumps(to_message(klines[3]) | bad).encode())
    assert await ingest_all(rabbitmq_url, market_db, bodies, timeout=10) == (50, 2, 50, 0)


async def ingest_all(
    rabbitmq_url: str, market_db: str, bodies: list[bytes], timeout: float
) -> tuple[int, int, int, int]:
    """`bodies` published on a queue of their own and taken in by a CandleIngest until each was
    stored or refused: (stored, malformed, candles in the table, messages left on the queue)."""
    connection = await aio_pika.connect(rabbitmq_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(exclusive=True)
        for body in bodies:
            await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue.name)
        async with asyncpg.create_pool(market_db, min_size=1, max_size=2) as pool:
            ingest = CandleIngest(queue, pool, batch=64, flush=0.05)
            await ingest.start()
            deadline = time.monotonic() + timeout
            while ingest.stored + ingest.malformed < len(bodies):
                assert time.monotonic() < deadline, (ingest.stored, ingest.malformed)
                await asyncio.sleep(0.05)
            await ingest.stop()
            stored = await pool.fetchval("SELECT count(*) FROM candles")
        declared = await channel.declare_queue(queue.name, passive=True)
        left = declared.declaration_result.message_count or 0
    finally:
        await connection.close()
    return ingest.stored, ingest.malformed, stored, left


async def test_a_batch_stopped_mid_write_is_stored_by_the_last_write_not_acknowledged_unstored(
    market_db: str, rabbitmq_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`stop` while a batch's write is under way cancels it (nothing of it committed); the last
    write of `stop` stores it with what came meanwhile, before its one `multiple`
    acknowledgement covers them all. The first write is made to hang until cancelled."""
    klines = list(SimulatedMarket(3, 29_000_000).generate(20).klines())  # 100 candles
    bodies = [json.dumps(to_message(k)).encode() for k in klines]
    writing = asyncio.Event()

    async def first_write_hangs(pool: asyncpg.Pool, batch: list[Kline]) -> None:
        if not writing.is_set():
            writing.set()
            await asyncio.Event().wait()  # until cancelled
        await upsert_klines(pool, batch)

    monkeypatch.setattr(ingest_module, "upsert_klines", first_write_hangs)
    connection = await aio_pika.connect(rabbitmq_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(exclusive=True)

        async def send(part: list[bytes]) -> None:
            for body in part:
                await channel.default_exchange.publish(aio_pika.Message(body), queue.name)

        async def ready() -> int:
            declared = await channel.declare_queue(queue.name, passive=True)
            return int(declared.declaration_result.message_count or 0)

        async with asyncpg.create_pool(market_db, min_size=1, max_size=2) as pool:
            ingest = CandleIngest(queue, pool, batch=64, flush=0.05)
            await send(bodies[:64])
            await ingest.start()
            await asyncio.wait_for(writing.wait(), 20)
            await send(bodies[64:])
            deadline = time.monotonic() + 20
            while await ready():  # all delivered, the first 64 being written
                assert time.monotonic() < deadline, "the candles were not all delivered"
                await asyncio.sleep(0.02)
            await ingest.stop()
            assert await pool.fetchval("SELECT count(*) FROM candles") == len(bodies)
        assert ingest.stored == len(bodies)
    finally:
        await connection.close()

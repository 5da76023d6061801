"""Binance for real, against the local fake Binance (tests/fakes/binance.py) and a real
PostgreSQL, Redis and RabbitMQ: REST backfill with pagination, weights, 429s and gaps; the
WebSocket stream with malformed frames, duplicates, disconnects and a compressed 24 h cut."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aio_pika
import asyncpg
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from mastertrade.core.bus import declare_topology
from mastertrade.core.market_messages import BookTicker as BookTickerMessage
from mastertrade.market_data.binance_rest import BinanceBannedError, BinanceError, BinanceRest
from mastertrade.market_data.binance_ws import BinanceStream
from mastertrade.market_data.collectors import RETRY_SECONDS, retry_pause
from mastertrade.market_data.domain.events import to_millis
from mastertrade.market_data.history import binance_history
from mastertrade.market_data.metrics import MarketMetrics
from mastertrade.market_data.sink import MarketSink
from mastertrade.market_data.writer import Connections, EventWriter
from mastertrade_model.topology import MARKET_DATA
from tests.fakes.binance import FakeBinance, book_frame, kline_frame, trade_frame
from tests.services.conftest import REDIS_TEST_URL

pytestmark = pytest.mark.infra
T0 = datetime(2025, 1, 1, tzinfo=UTC)
T0_MS = 1735689600000


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    server = FakeBinance(history_start_ms=T0_MS, history_end_ms=T0_MS + 2500 * 60_000)
    await server.start()
    yield server
    await server.stop()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, {"service": "test", **labels})
    return value or 0.0


async def test_rest_backfill_pages_and_resumes_after_a_gap_without_duplicates(
    pool: asyncpg.Pool, fake: FakeBinance
) -> None:
    metrics = MarketMetrics(CollectorRegistry(), "test")
    rest = BinanceRest(fake.rest_url, 6000, metrics=metrics, clock=time.time)
    try:
        now = T0 + timedelta(minutes=2500)
        written = await binance_history(rest, pool, symbols=["BTCUSDT"], days=30, now=now)
        assert written == 2500
        # 30 days back is before the fake's history: its first page starts at T0
        assert [r["startTime"] for r in fake.requests] == [
            str(to_millis(now - timedelta(days=30))),
            str(T0_MS + 1000 * 60_000),
            str(T0_MS + 2000 * 60_000),
        ]
        assert all(r["limit"] == "1000" for r in fake.requests)
        # the service was away for 1500 minutes: only the gap is written, and asked for with
        # the 30 days before the first stored minute (one empty page: the symbol has no older
        # history, but a backfill interrupted before its first page would look the same)
        fake.history_end_ms += 1500 * 60_000
        fake.requests.clear()
        later = now + timedelta(minutes=1500)
        written = await binance_history(rest, pool, symbols=["BTCUSDT"], days=30, now=later)
        assert written == 1500
        assert [(r["startTime"], r["endTime"]) for r in fake.requests[:2]] == [
            (str(to_millis(later - timedelta(days=30))), str(T0_MS)),
            (str(T0_MS + 2500 * 60_000), str(to_millis(later))),
        ]
        counts = await pool.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT open_time) AS d, min(open_time) AS first "
            "FROM candles WHERE symbol = 'BTCUSDT'"
        )
        assert counts is not None and counts["n"] == counts["d"] == 4000
        assert counts["first"] == T0
        assert sample(metrics.registry, "mastertrade_binance_used_weight_1m") > 0
    finally:
        await rest.close()


async def test_a_gap_is_backfilled_from_the_candle_seen_before_it_not_the_newest_stored(
    pool: asyncpg.Pool, fake: FakeBinance
) -> None:
    """Reconnected after 1500 minutes away, the new connection stores the present minute before
    this symbol's turn in the backfill comes: read from the newest stored candle, the gap would
    be skipped for good; read from the one the stream saw before the drop, it is filled."""
    rest = BinanceRest(fake.rest_url, 6000)
    try:
        now = T0 + timedelta(minutes=1000)
        assert await binance_history(rest, pool, symbols=["BTCUSDT"], days=30, now=now) == 1000
        fake.history_end_ms += 1500 * 60_000
        later = now + timedelta(minutes=1500)
        present = later - timedelta(minutes=1)  # stored live by the new connection
        async with pool.acquire() as connection:
            await connection.execute(
                "INSERT INTO candles (symbol, interval, open_time, open, high, low, close, volume)"
                " VALUES ('BTCUSDT', '1m', $1, 1, 1, 1, 1, 1)", present)  # fmt: skip
        seen = {"BTCUSDT": now - timedelta(minutes=1)}
        await binance_history(rest, pool, symbols=["BTCUSDT"], days=30, now=later, since=seen)
        stored = await pool.fetchval("SELECT count(DISTINCT open_time) FROM candles "
                                     "WHERE symbol = 'BTCUSDT'")  # fmt: skip
    finally:
        await rest.close()
    assert stored == 2500  # no minute missing


async def test_a_429_is_honoured_for_its_retry_after_and_no_418_is_risked(
    pool: asyncpg.Pool, fake: FakeBinance
) -> None:
    fake.fail_next, fake.retry_after = 1, 1
    rest = BinanceRest(fake.rest_url, 6000)
    try:
        now = T0 + timedelta(minutes=1200)
        assert await binance_history(rest, pool, symbols=["ETHBTC"], days=1, now=now) == 1200
    finally:
        await rest.close()
    assert fake.statuses == [429, 200, 200]
    assert fake.request_times[1] - fake.request_times[0] >= 1.0
    assert 418 not in fake.statuses


async def test_the_weight_budget_waits_for_the_next_minute_instead_of_going_over(
    fake: FakeBinance,
) -> None:
    fake.weight_offset = 4797  # another client on the same IP used most of the minute
    waits: list[float] = []
    clock = [1_700_000_010.0]

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    rest = BinanceRest(fake.rest_url, 4800, clock=lambda: clock[0], sleep=sleep)
    try:
        await rest.klines("BTCUSDT", "1m", T0_MS, T0_MS + 60_000)  # the answer says 4799 used
        assert waits == []
        await rest.klines("BTCUSDT", "1m", T0_MS, T0_MS + 60_000)  # 2 more would make 4801
        assert waits == [pytest.approx(30.25)]  # 30 s into the minute: to the next one
        assert fake.statuses == [200, 200]
    finally:
        await rest.close()


async def test_a_418_stops_the_client_instead_of_retrying(fake: FakeBinance) -> None:
    fake.ban(30)  # as if a careless client on the same IP had ignored a Retry-After
    rest = BinanceRest(fake.rest_url, 6000)
    try:
        with pytest.raises(BinanceError, match=r"banned this IP for 60s \(418\)"):
            await rest.klines("BTCUSDT", "1m", T0_MS, T0_MS)
    finally:
        await rest.close()
    assert fake.statuses == [418]  # and never asked again


def test_after_a_ban_collection_waits_it_out_before_asking_again() -> None:
    """The collector builds a new client for each try: the ban's pause must outlive it."""
    assert retry_pause(BinanceBannedError(600.0)) == 600.0
    assert retry_pause(BinanceError("Binance /api/v3/klines answered 400")) == RETRY_SECONDS
    assert retry_pause(BinanceBannedError(1.0)) == RETRY_SECONDS


@contextlib.asynccontextmanager
async def live_sink(
    pool: asyncpg.Pool, rabbitmq_url: str, metrics: MarketMetrics
) -> AsyncIterator[tuple[MarketSink, aio_pika.abc.AbstractQueue]]:
    """A sink writing to the real PostgreSQL, Redis and RabbitMQ, and a queue of what it
    publishes."""
    connection = await aio_pika.connect(rabbitmq_url)
    redis = aioredis.Redis.from_url(REDIS_TEST_URL)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await declare_topology(channel, [MARKET_DATA], [])
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(MARKET_DATA.name, routing_key="#")
        connections = Connections(lambda: pool, lambda: redis, lambda: channel)
        writer = EventWriter(connections, metrics, "binance")
        sink = MarketSink(writer, metrics, batch_size=100, flush_interval=0.05)
        sink.start()
        try:
            yield sink, queue
        finally:
            await sink.stop()
    finally:
        await redis.aclose()
        await connection.close()


async def until(condition: Callable[[], Awaitable[bool] | bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def stream_for(
    fake: FakeBinance, sink: MarketSink, metrics: MarketMetrics, **kw: object
) -> tuple[BinanceStream, list[dict[str, datetime]]]:
    gaps: list[dict[str, datetime]] = []  # each backfill's newest candles seen before its gap

    async def on_gap(since: Mapping[str, datetime]) -> None:
        gaps.append(dict(since))

    options: dict[str, object] = {"rotate_seconds": 3600.0, "max_backoff": 0.5} | kw
    stream = BinanceStream(
        fake.ws_url,
        ["btcusdt@trade", "btcusdt@kline_1m", "btcusdt@bookTicker"],
        sink=sink,
        metrics=metrics,
        on_gap=on_gap,
        **options,  # type: ignore[arg-type]
    )
    return stream, gaps


async def test_malformed_duplicate_and_late_frames_are_counted_and_never_stored(
    pool: asyncpg.Pool, fake: FakeBinance, rabbitmq_url: str
) -> None:
    metrics = MarketMetrics(CollectorRegistry(), "test")
    async with live_sink(pool, rabbitmq_url, metrics) as (sink, queue):
        stream, _ = stream_for(fake, sink, metrics)
        task = asyncio.create_task(stream.run())
        try:
            await until(lambda: fake.open_connections == 1)
            await fake.push(
                trade_frame("BTCUSDT", 100, "60000.10", "0.5", T0_MS),
                "{this is not json",
                trade_frame("BTCUSDT", 101, "NaN", "0.5", T0_MS),
                book_frame("BTCUSDT", 7, "60001.00", "60000.00"),  # crossed: bid above ask
                trade_frame("BTCUSDT", 100, "60000.10", "0.5", T0_MS),  # duplicate
                trade_frame("BTCUSDT", 99, "59999.00", "0.1", T0_MS),  # late
                book_frame("BTCUSDT", 8, "60000.00", "60000.20"),
                kline_frame("BTCUSDT", T0_MS, closed=False),  # still open: not stored
                kline_frame("BTCUSDT", T0_MS),
                trade_frame("BTCUSDT", 102, "60000.30", "0.25", T0_MS + 1000),
                stream="btcusdt@trade",
            )
            await fake.push(b"\x00\x01binary")
            await until(lambda: sink.written == 4)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert sample(metrics.registry, "mastertrade_market_data_rejected_total",
                      source="binance", reason="malformed") == 4  # fmt: skip
        assert sample(metrics.registry, "mastertrade_market_data_rejected_total",
                      source="binance", reason="duplicate") == 1  # fmt: skip
        assert sample(metrics.registry, "mastertrade_market_data_rejected_total",
                      source="binance", reason="out_of_order") == 1  # fmt: skip
        trades = await pool.fetch("SELECT trade_id, price FROM trades ORDER BY trade_id")
        assert [(r["trade_id"], str(r["price"])) for r in trades] == [
            ("100", "60000.10"), ("102", "60000.30")
        ]  # fmt: skip
        assert await pool.fetchval("SELECT count(*) FROM candles") == 1
        assert await pool.fetchval("SELECT update_id FROM book_tickers") == 8
        redis = aioredis.Redis.from_url(REDIS_TEST_URL, decode_responses=True)
        try:
            assert await redis.get("market:price:BTCUSDT") == "60000.30"
            book = await redis.hgetall("market:book:BTCUSDT")
            assert (book["bid"], book["ask"], book["update_id"]) == (
                "60000.00", "60000.20", "8"
            )  # fmt: skip
        finally:
            await redis.aclose()
        keys, tickers = [], []
        async with queue.iterator(timeout=5) as messages:
            async for message in messages:
                keys.append(message.routing_key)
                if (message.routing_key or "").startswith("ticker."):
                    tickers.append(BookTickerMessage.model_validate_json(message.body))
                await message.ack()
                if len(keys) == 4:
                    break
        assert keys == ["trade.BTCUSDT", "ticker.BTCUSDT", "candle.1m.BTCUSDT", "trade.BTCUSDT"]
        # what the arbitrage service parses: the stream's numbers, exactly, and their venue
        (ticker,) = tickers
        assert (ticker.bid, ticker.ask, ticker.update_id, ticker.venue) == (
            Decimal("60000.00"), Decimal("60000.20"), 8, "binance"
        )  # fmt: skip


async def test_the_stream_reconnects_backfills_the_gap_and_rotates_before_the_cut(
    pool: asyncpg.Pool, fake: FakeBinance, rabbitmq_url: str
) -> None:
    fake.max_connection_seconds = 4.0  # Binance's 24 h cut, compressed
    metrics = MarketMetrics(CollectorRegistry(), "test")
    async with live_sink(pool, rabbitmq_url, metrics) as (sink, _):
        stream, gaps = stream_for(fake, sink, metrics, rotate_seconds=1.5)
        task = asyncio.create_task(stream.run())
        try:
            await until(lambda: fake.ws_connections == 1 and len(gaps) == 1)
            await fake.push(kline_frame("BTCUSDT", T0_MS), stream="btcusdt@kline_1m")
            await until(lambda: sink.written == 1)
            await fake.drop_connections()  # a network failure
            await until(lambda: len(gaps) == 2)
            # the gap is filled from the newest candle seen before the drop, not from the newest
            # stored, which the new connection may have moved on meanwhile
            assert gaps[1] == {"BTCUSDT": T0}
            await fake.push('{"e":"serverShutdown","E":1735689600000}')  # a server restart
            await until(lambda: len(gaps) == 3)
            rotations = fake.ws_connections - 3  # any that came in between
            await until(lambda: fake.ws_connections >= 3 + rotations + 2, timeout=20)
            await fake.push(trade_frame("BTCUSDT", 5, "1.5", "2", T0_MS))
            await until(lambda: sink.written == 2)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    registry = metrics.registry
    assert fake.cuts == 0  # every rotation came before the server's cut
    assert len(gaps) == 3  # rotations overlap the connections: no gap, no backfill
    assert sample(registry, "mastertrade_market_data_reconnects_total",
                  source="binance", reason="disconnect") == 2  # fmt: skip
    assert sample(registry, "mastertrade_market_data_reconnects_total",
                  source="binance", reason="rotation") >= 2  # fmt: skip
    assert fake.open_connections == 0  # the client closed what it opened


async def test_a_drop_while_the_rotation_cannot_connect_is_backfilled(
    pool: asyncpg.Pool, fake: FakeBinance, rabbitmq_url: str
) -> None:
    """A rotation opens the new connection before closing the old: no gap, unless the server
    refuses new connections for a while and the old one drops meanwhile."""
    metrics = MarketMetrics(CollectorRegistry(), "test")
    async with live_sink(pool, rabbitmq_url, metrics) as (sink, _):
        stream, gaps = stream_for(fake, sink, metrics, rotate_seconds=1.0, max_backoff=0.2)
        task = asyncio.create_task(stream.run())
        try:
            await until(lambda: fake.ws_connections == 1 and len(gaps) == 1)
            fake.refuse_connections = True
            await until(lambda: sample(metrics.registry, "mastertrade_market_data_reconnects_total",
                                       source="binance", reason="error") >= 1)  # fmt: skip
            await fake.drop_connections()  # the old one goes while the rotation retries
            await asyncio.sleep(0.3)
            fake.refuse_connections = False
            await until(lambda: len(gaps) == 2)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_reconnects_back_off_while_the_server_is_away(
    pool: asyncpg.Pool, rabbitmq_url: str
) -> None:
    server = FakeBinance(history_start_ms=T0_MS, history_end_ms=T0_MS)
    await server.start()
    port = server.port
    await server.stop()  # nothing listens there now
    metrics = MarketMetrics(CollectorRegistry(), "test")
    async with live_sink(pool, rabbitmq_url, metrics) as (sink, _):
        stream, _ = stream_for(server, sink, metrics, max_backoff=0.2)
        task = asyncio.create_task(stream.run())
        await until(lambda: sample(metrics.registry, "mastertrade_market_data_reconnects_total",
                                   source="binance", reason="error") >= 3)  # fmt: skip
        revived = FakeBinance(history_start_ms=T0_MS, history_end_ms=T0_MS, port=port)
        await revived.start_on(port)
        try:
            await until(lambda: revived.ws_connections == 1)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await revived.stop()

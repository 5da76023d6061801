"""arbitrage_service on real RabbitMQ, PostgreSQL and Redis: a planted triangle published as
book tickers is found, stored, published and counted; stale and non-finite quotes are not;
a second venue speaking Binance's REST API feeds cross-venue detection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import asyncpg
import pytest
import uvicorn
from fastapi import FastAPI

from mastertrade.catalog import find_service, load_service_module, load_service_settings
from mastertrade_model.topology import MARKET_DATA, SIGNALS
from tests.infra import free_port
from tests.services.helpers import dead_letters, running

pytestmark = pytest.mark.infra


def arbitrage_app(env: dict[str, str]) -> FastAPI:
    spec = find_service("arbitrage_service")
    module = load_service_module(spec)
    return module.create_app(load_service_settings(spec, env))


def ticker(symbol: str, bid: str, ask: str, qty: str = "5", age: float = 0.0) -> dict[str, str]:
    stamp = datetime.now(UTC) - timedelta(seconds=age)
    return {"symbol": symbol, "bid": bid, "bid_qty": qty, "ask": ask, "ask_qty": qty,
            "time": stamp.isoformat()}  # fmt: skip


async def publish(url: str, bodies: list[dict[str, str]]) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(MARKET_DATA.name)
        for body in bodies:
            message = aio_pika.Message(json.dumps(body).encode(), content_type="application/json")
            await exchange.publish(message, routing_key=f"ticker.{body['symbol']}")


async def stored(url: str, route: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetch(
            "SELECT * FROM arbitrage_opportunities WHERE route = $1 ORDER BY id", route
        )
    finally:
        await connection.close()


async def wait_until(check: Any, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_a_planted_triangle_is_found_stored_published_and_counted(
    service_env: dict[str, str], rabbitmq_url: str, database_url: str
) -> None:
    env = {**service_env, "ARBITRAGE_PAIRS": "BTC/TRIA,ETH/BTC,ETH/TRIA"}
    app = arbitrage_app(env)
    async with running(app) as client:
        listener = await aio_pika.connect(rabbitmq_url)
        async with listener:
            channel = await listener.channel()
            queue = await channel.declare_queue(exclusive=True)
            await queue.bind(SIGNALS.name, "arbitrage.#")
            await publish(rabbitmq_url, [
                ticker("ETHTRIA", "2600", "2601", age=60),  # stale: never used
                ticker("BTCTRIA", "50000", "50001"),
                ticker("ETHBTC", "0.0499", "0.05"),
                {**ticker("ETHTRIA", "2600", "2601"), "bid": "Infinity"},  # refused
                {**ticker("ETHTRIA", "2600", "2601"), "ask": "NaN"},  # refused
            ])  # fmt: skip
            await asyncio.sleep(1.0)
            route = "TRIA -> BTC -> ETH -> TRIA"
            assert await stored(database_url, route) == [], "stale or non-finite: nothing"
            await publish(rabbitmq_url, [ticker("ETHTRIA", "2600", "2601")])
            received: list[aio_pika.abc.AbstractIncomingMessage] = []

            async def delivered() -> bool:
                message = await queue.get(no_ack=True, fail=False)
                if message is not None:
                    received.append(message)
                return bool(received)

            await wait_until(delivered)
            body = json.loads(received[0].body)
        assert body["route"] == route and body["kind"] == "triangular"
        rows = await stored(database_url, route)
        assert len(rows) == 1
        assert str(rows[0]["expected_profit"]) == body["expected_profit"]
        assert rows[0]["expected_profit"] > 0
        recent = (await client.get("/api/v1/opportunities")).json()
        assert recent[0]["route"] == route
        metrics = (await client.get("/metrics")).text
    assert 'mastertrade_arbitrage_opportunities_total{kind="triangular"} 1.0' in metrics
    assert 'mastertrade_arbitrage_quotes_total{outcome="invalid"} 2.0' in metrics
    assert 'mastertrade_arbitrage_quotes_total{outcome="accepted"} 4.0' in metrics
    assert 'mastertrade_arbitrage_expected_profit_total{asset="TRIA",kind="triangular"}' in metrics


async def test_an_opportunity_whose_report_fails_is_reported_again_after_its_interval(
    service_env: dict[str, str], rabbitmq_url: str, database_url: str
) -> None:
    """Redis away: each report stores and publishes, then fails on the recent list. The ticker
    is neither dead-lettered nor held; the route stays muted for its interval (part of the
    report went out), and a quote after it reports the route again."""
    nobody = f"redis://127.0.0.1:{free_port()}/0"
    env = {**service_env, "ARBITRAGE_PAIRS": "BTC/TRIB,ETH/BTC,ETH/TRIB", "REDIS_URL": nobody,
           "ARBITRAGE_REPORT_INTERVAL": "3"}  # fmt: skip
    route = "TRIB -> BTC -> ETH -> TRIB"
    before = await dead_letters(rabbitmq_url)
    async with running(arbitrage_app(env)):
        await publish(rabbitmq_url, [ticker("BTCTRIB", "50000", "50001"),
                                     ticker("ETHBTC", "0.0499", "0.05"),
                                     ticker("ETHTRIB", "2600", "2601")])  # fmt: skip

        async def reported(times: int) -> bool:
            return len(await stored(database_url, route)) >= times

        await wait_until(lambda: reported(1))
        await publish(rabbitmq_url, [ticker("ETHTRIB", "2600", "2601")])  # within the interval
        await asyncio.sleep(3.1)
        assert len(await stored(database_url, route)) == 1
        await publish(rabbitmq_url, [ticker("ETHTRIB", "2600", "2601")])
        await wait_until(lambda: reported(2))
    assert await dead_letters(rabbitmq_url) == before


def binance_like(answer: list[dict[str, str]], asked: list[str]) -> FastAPI:
    """A local venue answering Binance's GET /api/v3/ticker/bookTicker?symbols=[...]."""
    venue = FastAPI()

    @venue.get("/api/v3/ticker/bookTicker")
    async def book_ticker(symbols: str) -> list[dict[str, str]]:
        asked.append(symbols)
        wanted = set(json.loads(symbols))
        return [entry for entry in answer if entry["symbol"] in wanted]

    return venue


@pytest.fixture
async def second_venue() -> AsyncIterator[tuple[str, list[str]]]:
    asked: list[str] = []
    answer = [
        {"symbol": "BTCXVEN", "bidPrice": "51000.00", "bidQty": "0.20000000",
         "askPrice": "51001.00", "askQty": "1.00000000"},
        {"symbol": "ETHXVEN", "bidPrice": "Infinity", "bidQty": "1", "askPrice": "1",
         "askQty": "1"},
    ]  # fmt: skip
    port = free_port()
    config = uvicorn.Config(binance_like(answer, asked), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="off")  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    yield f"http://127.0.0.1:{port}", asked
    server.should_exit = True
    await task


async def test_a_second_venue_feeds_cross_venue_opportunities(
    service_env: dict[str, str], rabbitmq_url: str, database_url: str,
    second_venue: tuple[str, list[str]],
) -> None:  # fmt: skip
    url, asked = second_venue
    env = {**service_env, "ARBITRAGE_PAIRS": "BTC/XVEN,ETH/XVEN",
           "ARBITRAGE_SECOND_VENUE_URL": url, "ARBITRAGE_SECOND_VENUE_NAME": "local",
           "ARBITRAGE_SECOND_VENUE_POLL": "0.1"}  # fmt: skip
    app = arbitrage_app(env)
    async with running(app):
        await publish(rabbitmq_url, [ticker("BTCXVEN", "49999", "50000", qty="3")])
        route = "BTCXVEN: binance -> local"

        async def found() -> bool:
            return bool(await stored(database_url, route))

        await wait_until(found)
        assert app.state.venue_poller.refused >= 1  # the Infinity entry
    row = (await stored(database_url, route))[0]
    assert row["kind"] == "cross_venue"
    assert json.loads(asked[0]) == ["BTCXVEN", "ETHXVEN"]
    legs = json.loads(row["legs"])
    assert legs[0]["symbol"] == "BTCXVEN" and legs[0]["side"] == "buy"
    # bounded by the second venue's bid quantity (0.2 BTC, grossed up for the first fee)
    assert float(legs[1]["amount_in"]) <= 0.2
    assert row["expected_profit"] > 0

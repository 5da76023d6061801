"""Helpers of the trading-loop tests: a fresh database and vhost per test, quotes in Redis, and
a queue that records what the services publish."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from decimal import Decimal
from typing import Any

import aio_pika
import asyncpg
import redis.asyncio as aioredis
import uvicorn
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from fastapi import FastAPI

from mastertrade.catalog import find_service, load_service_module
from mastertrade.core.bus import declare_topology
from mastertrade.core.prices import TopOfBook, write_book
from mastertrade.core.settings import load_settings
from mastertrade_model.topology import ALERTS, EXCHANGES, ORDERS, QUEUES
from tests.infra import free_port
from tests.services.conftest import REDIS_TEST_URL


def build_app(service: str, env: dict[str, str]) -> FastAPI:
    spec = find_service(service)
    module = load_service_module(spec)
    return module.create_app(load_settings(module.Settings, spec.name, spec.dependencies, env))


def new_symbol() -> str:
    """A symbol no other test (or engineer) writes quotes for."""
    return f"T{uuid.uuid4().hex[:8].upper()}USDT"


async def set_quote(symbol: str, bid: str, ask: str) -> None:
    client = aioredis.Redis.from_url(REDIS_TEST_URL)
    try:
        book = TopOfBook(symbol, Decimal(bid), Decimal(ask), int(time.time() * 1000))
        await write_book(client, book)
    finally:
        await client.aclose()


async def unmarked_events(database_url: str) -> int:
    """Outbox rows not marked sent: what the outbox loops would still send."""
    connection = await asyncpg.connect(database_url)
    try:
        return int(
            await connection.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        )
    finally:
        await connection.close()


HALT_FLAGS = ("breaker_open", "kill_switch")


async def halt_trading(database_url: str, environment: str, flag: str = "breaker_open") -> None:
    """Turn on the risk manager's circuit breaker or kill switch of `environment`, as a trip or
    an admin would (the row `risk_state` the executor reads)."""
    assert flag in HALT_FLAGS
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            f"INSERT INTO risk_state (environment, {flag}) VALUES ($1, true) "
            f"ON CONFLICT (environment) DO UPDATE SET {flag} = true",
            environment,
        )
    finally:
        await connection.close()


class Recorder:
    """Every message published on the orders and alerts exchanges, by routing key."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.arrived = asyncio.Event()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        async with message.process():
            self.messages.append((message.routing_key or "", json.loads(message.body)))
            self.arrived.set()

    def of(self, key: str) -> list[dict[str, Any]]:
        return [body for routing_key, body in self.messages if routing_key == key]

    async def wait_for(
        self, key: str, count: int = 1, timeout: float = 15.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.of(key)) < count:
            assert time.monotonic() < deadline, f"{count}x {key} not seen: {self.messages}"
            self.arrived.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), 0.2)
        return self.of(key)


@asynccontextmanager
async def recording(url: str) -> AsyncIterator[tuple[Recorder, AbstractChannel]]:
    """The recorder and a channel to publish with, the topology declared."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await declare_topology(channel, EXCHANGES, QUEUES)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(ORDERS.name, "#")
        await queue.bind(ALERTS.name, "#")
        recorder = Recorder()
        await queue.consume(recorder.on_message)
        yield recorder, channel


@asynccontextmanager
async def serve_app(app: FastAPI) -> AsyncIterator[str]:
    """An ASGI app served by uvicorn on a free loopback port in this loop; yields its URL."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws="websockets-sansio",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task

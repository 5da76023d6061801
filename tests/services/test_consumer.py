"""Consuming on the real broker: ack after success, dead-letter on failure, drain on shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel
from fastapi import FastAPI

from mastertrade.catalog import find_service, load_service_module
from mastertrade.core.app import build_service_app
from mastertrade.core.bus import publish_json
from mastertrade.core.consumer import Handler
from mastertrade.core.settings import load_settings
from mastertrade_model.topology import DEAD_LETTER_QUEUE, MARKET_DATA
from tests.services.helpers import running, wait_for_status

pytestmark = pytest.mark.infra

QUEUE = "strategy_service.candles"


@pytest.fixture
async def channel(rabbitmq_url: str) -> AsyncIterator[AbstractChannel]:
    """A plain channel of the test's own, to publish and to look into queues."""
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        test_channel = await connection.channel()
        yield test_channel


def strategy_app(env: dict[str, str], handler: Handler) -> FastAPI:
    spec = find_service("strategy_service")
    settings = load_settings(load_service_module(spec).Settings, spec.name, spec.dependencies, env)
    return build_service_app(spec, settings, handlers={QUEUE: handler})


async def message_count(channel: AbstractChannel, name: str) -> int:
    queue = await channel.declare_queue(name, passive=True)
    count = queue.declaration_result.message_count
    assert count is not None
    return int(count)


async def test_handled_messages_are_acked_and_failures_dead_lettered(
    service_env: dict[str, str], channel: AbstractChannel
) -> None:
    seen: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def handler(payload: dict[str, Any]) -> None:
        if payload.get("poison"):
            raise ValueError("cannot handle this candle")
        await seen.put(payload)

    async with running(strategy_app(service_env, handler)) as client:
        await wait_for_status(client, "/health", 200)
        await (await channel.declare_queue(DEAD_LETTER_QUEUE, passive=True)).purge()
        await publish_json(channel, MARKET_DATA.name, "candle.BTCUSDT.1m", {"close": "1.5"})
        await publish_json(channel, MARKET_DATA.name, "candle.BTCUSDT.1m", {"poison": True})
        assert await asyncio.wait_for(seen.get(), 10) == {"close": "1.5"}
        for _ in range(50):
            if await message_count(channel, DEAD_LETTER_QUEUE) == 1:
                break
            await asyncio.sleep(0.1)
    assert await message_count(channel, QUEUE) == 0
    dead = await (await channel.declare_queue(DEAD_LETTER_QUEUE, passive=True)).get(no_ack=True)
    assert dead is not None
    assert b"poison" in dead.body


async def test_shutdown_waits_for_the_message_in_flight(
    service_env: dict[str, str], channel: AbstractChannel
) -> None:
    started = asyncio.Event()
    finished: list[int] = []

    async def slow_handler(payload: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(1.0)
        finished.append(int(payload["n"]))

    async with running(strategy_app(service_env, slow_handler)) as client:
        await wait_for_status(client, "/health", 200)
        await publish_json(channel, MARKET_DATA.name, "candle.ETHUSDT.1m", {"n": 1})
        await asyncio.wait_for(started.wait(), 10)
    # Leaving the block ran the shutdown: the handler finished and its message was acked.
    assert finished == [1]
    assert await message_count(channel, QUEUE) == 0

"""Consuming on the real broker: ack after success, dead-letter on failure, drain on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel
from fastapi import FastAPI

from mastertrade.catalog import find_service, load_service_module
from mastertrade.core.app import build_service_app
from mastertrade.core.bus import publish_json
from mastertrade.core.connections import RabbitConnector
from mastertrade.core.consumer import Consumer, Handler, Requeue
from mastertrade.core.settings import load_settings
from mastertrade_model.topology import DEAD_LETTER_QUEUE, MARKET_DATA, Queue
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


@asynccontextmanager
async def slow_answers(broker_url: str) -> AsyncIterator[tuple[str, dict[str, float]]]:
    """A TCP proxy to the broker that holds the broker's answers back for `delay["seconds"]`
    (0: none) before passing them on: a broker, or a network, that is slow for a moment. The
    URL to reach the broker through it, and the delay to set."""
    delay = {"seconds": 0.0}
    broker = urlsplit(broker_url)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, held: bool) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if held and delay["seconds"]:
                    await asyncio.sleep(delay["seconds"])
                writer.write(data)
                await writer.drain()
        writer.close()

    async def forward(client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        reader, writer = await asyncio.open_connection(broker.hostname, broker.port or 5672)
        await asyncio.gather(pipe(client_reader, writer, False), pipe(reader, client, True))

    server = await asyncio.start_server(forward, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield broker_url.replace(broker.netloc.split("@")[-1], f"127.0.0.1:{port}"), delay


async def test_a_backlog_question_the_broker_is_slow_to_answer_hands_no_message_back(
    rabbitmq_url: str, channel: AbstractChannel
) -> None:
    """/metrics asks each queue's backlog and waits a second at most. Cancelled on the wire,
    the question would make aiormq close the channel the handlers ack on: every message in
    flight handed back and handled a second time."""
    name = "test.consumer.slow_backlog"
    started: list[int] = []
    handled: list[int] = []

    async def handler(payload: dict[str, Any]) -> None:
        started.append(payload["n"])
        await asyncio.sleep(2.0)  # a batch in the database
        handled.append(payload["n"])

    consumer = Consumer(Queue(name, (), dead_letter=False), handler, prefetch=10)
    async with slow_answers(rabbitmq_url) as (url, delay):
        connector = RabbitConnector(url, 5.0, 1.0, consumer.start)
        await connector.open()
        try:
            for n in range(3):
                await channel.default_exchange.publish(
                    aio_pika.Message(json.dumps({"n": n}).encode()), routing_key=name
                )
            while len(started) < 3:
                await asyncio.sleep(0.05)
            delay["seconds"] = 1.5
            assert await consumer.backlog(timeout=1.0) is None  # not answered in time
            delay["seconds"] = 0.0
            while consumer.handled < 3:
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # a message handed back would have started again by now
            assert await consumer.backlog(timeout=5.0) == 0
        finally:
            await connector.close()
            await channel.queue_delete(name)
    assert sorted(started) == sorted(handled) == [0, 1, 2]


async def test_a_paused_consumer_takes_nothing_and_a_requeued_message_goes_back(
    channel: AbstractChannel,
) -> None:
    """Paused, the queue fills and nothing is handled; resumed, a handler that raises Requeue
    hands its message back (not dead-lettered), and it is handled when it comes again."""
    queue = Queue(f"test_requeue_{uuid.uuid4().hex[:8]}", (), dead_letter=False)
    calls: list[dict[str, Any]] = []
    handled = asyncio.Event()

    async def handler(payload: dict[str, Any]) -> None:
        calls.append(payload)
        if len(calls) == 1:
            raise Requeue("not this pod's, for now")
        handled.set()

    consumer = Consumer(queue, handler, prefetch=1)
    consumer.paused = True
    await consumer.start(channel)
    try:
        await publish_json(channel, "", queue.name, {"n": 1})  # the default exchange
        await asyncio.sleep(0.5)
        waiting_while_paused = await message_count(channel, queue.name)
        await consumer.resume()
        await asyncio.wait_for(handled.wait(), 10)
        await consumer.pause(5)
        await publish_json(channel, "", queue.name, {"n": 2})
        await asyncio.sleep(0.5)
        left = await message_count(channel, queue.name)
    finally:
        await consumer.stop(5)
        await channel.queue_delete(queue.name)
    assert (waiting_while_paused, left) == (1, 1)
    assert calls == [{"n": 1}, {"n": 1}]
    assert (consumer.handled, consumer.rejected) == (1, 0)

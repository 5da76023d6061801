"""Publishing on the real broker: a persistent JSON message with its own id, confirmed; a
publish the broker refuses raises instead of vanishing."""

from __future__ import annotations

import json

import aio_pika
import pytest
from aio_pika.exceptions import AMQPError

from mastertrade.core.bus import publish_json

pytestmark = pytest.mark.infra


async def test_a_published_message_is_persistent_json_with_its_own_id(rabbitmq_url: str) -> None:
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange("test.bus", "topic", auto_delete=True)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, "bus.#")
        payloads = [{"n": n, "price": "1.50"} for n in range(3)]
        for payload in payloads:
            await publish_json(channel, "test.bus", "bus.test", payload)
        received = [await queue.get(timeout=5) for _ in payloads]
    assert [json.loads(m.body) for m in received] == payloads
    assert all(m.delivery_mode == aio_pika.DeliveryMode.PERSISTENT for m in received)
    assert all(m.content_type == "application/json" for m in received)
    assert len({m.message_id for m in received}) == 3  # each its own id


async def test_publishing_to_a_missing_exchange_raises(rabbitmq_url: str) -> None:
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        with pytest.raises(AMQPError):
            await publish_json(channel, "test.bus.no-such-exchange", "bus.test", {"n": 1})

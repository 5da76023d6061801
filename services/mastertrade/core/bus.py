"""Declaring MasterTrade's RabbitMQ topology and publishing onto it.

Services declare only the part of `topology` they use; declarations are idempotent, and a robust
channel re-declares them after a reconnect. Publishing waits for the broker's confirm, so a
message the broker did not take raises instead of vanishing.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange
from aio_pika.exceptions import AMQPError

from mastertrade_model.topology import EXCHANGES, QUEUES, Exchange, Queue

PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)


class TopologyError(Exception):
    """The topology could not be declared on the broker."""


async def declare_topology(
    channel: AbstractChannel, exchanges: Iterable[Exchange], queues: Iterable[Queue]
) -> dict[str, AbstractExchange]:
    """Declare exchanges, then queues and their bindings; returns the exchanges by name."""
    declared: dict[str, AbstractExchange] = {}
    for exchange in exchanges:
        declared[exchange.name] = await channel.declare_exchange(
            exchange.name, aio_pika.ExchangeType(exchange.type), durable=True
        )
    for queue in queues:
        amqp_queue = await channel.declare_queue(
            queue.name, durable=True, arguments=queue.declared_arguments()
        )
        for binding in queue.bindings:
            await amqp_queue.bind(binding.exchange, routing_key=binding.routing_key)
    return declared


async def publish_json(
    channel: AbstractChannel, exchange: str, routing_key: str, payload: dict[str, Any]
) -> None:
    """Publish a persistent JSON message and wait for the broker's confirm (a nack raises
    DeliveryError; an unroutable message is dropped by the broker, as aio-pika's default does).

    Straight to the channel's AMQP layer (aiormq, which aio-pika's `Exchange.publish` calls in
    the end; a robust channel still waits for its reconnection first): aio-pika's `Message` and
    exchange lookup cost a quarter more CPU per confirmed publish (0.19-0.28 against 0.14-0.20
    ms), and the trading loop publishes four messages per signal."""
    amqp = await channel.get_underlay_channel()
    properties = aiormq.spec.Basic.Properties(
        content_type="application/json", delivery_mode=PERSISTENT, message_id=uuid.uuid4().hex
    )
    await amqp.basic_publish(
        json.dumps(payload).encode(), exchange=exchange, routing_key=routing_key,
        properties=properties,
    )  # fmt: skip


async def apply_topology(url: str, timeout: float, report: Callable[[str], None]) -> None:
    """Declare the whole topology on the broker, waiting for it up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        try:
            connection = await aio_pika.connect(url, timeout=min(5.0, timeout))
            break
        except (OSError, AMQPError, TimeoutError) as error:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TopologyError(
                    f"RabbitMQ not reachable after {timeout:.0f}s: {error}"
                ) from error
            report(f"waiting for RabbitMQ (attempt {attempt}, {left:.0f}s left): {error!r}")
            await asyncio.sleep(min(2.0, left))
    async with connection:
        channel = await connection.channel()
        await declare_topology(channel, EXCHANGES, QUEUES)
    report(f"declared {len(EXCHANGES)} exchanges and {len(QUEUES)} queues on RabbitMQ")

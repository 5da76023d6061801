"""A stage of the trading loop with nothing left but what the issue requires of it: the floor.

`signal_to_fill.py` starts two of these between its publisher and its listener, so a message
crosses the same three broker hops and two service processes as a signal on its way to a fill.
Each relay takes the messages waiting (a `Batcher`, as the services do) and either publishes
each on and acknowledges it once the broker confirmed (no database), or writes the batch in one
transaction (one durable COMMIT, the least the issue allows: a decision stored before it is
published, an order before it is sent), acknowledges it, and publishes it without holding up
the next batch: the same libraries, event loop and pool settings as the services, and none of
their rules, books, events or outbox bookkeeping. Every implementation of this design on these
libraries does at least this much per stage, so none can be faster on the same machine.

    python bench/floor_relay.py AMQP_URL EXCHANGE IN_QUEUE OUT_ROUTING_KEY [DATABASE_URL]
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aio_pika
import asyncpg
import uvloop
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from mastertrade.core.batching import MAX_BATCH, Batcher
from mastertrade.core.bus import publish_json
from mastertrade.core.connections import keep_session

TABLE = "bench_floor_{key}"
"""Each relay writes a table of its own (named after the key it publishes), so they never
race to create one."""
CREATE = "CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, body JSONB NOT NULL)"
WRITE = "INSERT INTO {table} (id, body) SELECT * FROM unnest($1::text[], $2::jsonb[])"


class Relay:
    """Messages of one queue, committed (when there is a database) and published on."""

    def __init__(
        self, channel: AbstractChannel, exchange: str, key: str, pool: asyncpg.Pool | None
    ) -> None:
        self.channel, self.exchange, self.key, self.pool = channel, exchange, key, pool
        self.write = WRITE.format(table=TABLE.format(key=key))
        self.batcher: Batcher[dict[str, Any], None] = Batcher(self.process, "messages")
        self.publishing: set[asyncio.Task[None]] = set()

    async def process(self, bodies: list[dict[str, Any]]) -> list[None]:
        if self.pool is None:  # nothing durable but the broker: acknowledged once confirmed
            await self.publish(bodies)
        else:
            await self.commit(self.pool, bodies)
            # committed, so acknowledged at once (the services' outbox publishes what a crash
            # left unpublished); the next batch does not wait for these confirms
            task = asyncio.create_task(self.publish(bodies))
            self.publishing.add(task)
            task.add_done_callback(self.publishing.discard)
        return [None] * len(bodies)

    async def commit(self, pool: asyncpg.Pool, bodies: list[dict[str, Any]]) -> None:
        async with pool.acquire() as connection, connection.transaction():
            ids = [body["signal_id"] for body in bodies]
            await connection.execute(self.write, ids, [json.dumps(body) for body in bodies])

    async def publish(self, bodies: list[dict[str, Any]]) -> None:
        await asyncio.gather(
            *(publish_json(self.channel, self.exchange, self.key, body) for body in bodies)
        )

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        await self.batcher.submit(json.loads(message.body))
        await message.ack()


async def relay(url: str, exchange: str, queue: str, key: str, database: str | None) -> None:
    pool = None
    if database is not None:
        pool = await asyncpg.create_pool(database, min_size=1, max_size=4, reset=keep_session)
        await pool.execute(CREATE.format(table=TABLE.format(key=key)))
    connection = await aio_pika.connect_robust(url)
    channel = await connection.channel(publisher_confirms=True)
    await channel.set_qos(prefetch_count=MAX_BATCH)
    amqp_queue = await channel.declare_queue(queue, durable=True)
    await amqp_queue.consume(Relay(channel, exchange, key, pool).on_message)
    await asyncio.Future()  # until the bench terminates this process


if __name__ == "__main__":
    url, exchange, queue, key, *database = sys.argv[1:]
    uvloop.run(relay(url, exchange, queue, key, database[0] if database else None))

"""The outbox on real PostgreSQL and RabbitMQ: published rows are pruned once older than the
retention, never a row still waiting to be published, whatever its age; a row leased to its
writer is its writer's to send until the lease is over, then any loop's; what a sender sent is
marked by the next transaction, and what it failed to send is sent by the loop. An event for an
exchange the broker does not have is held back, not lost, and blocks nothing: the events around
it go out once each."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

import aio_pika
import asyncpg
import pytest
from aio_pika.abc import AbstractIncomingMessage

from mastertrade.core.bus import declare_topology
from mastertrade.core.outbox import (
    HOLD_SECONDS,
    LEASED_UNTIL,
    OutboxSender,
    OutboxSendError,
    Written,
    mark_sent,
    prune_published,
    publish_outbox,
    release_restored,
    written_in_order,
)
from mastertrade_model.topology import ALERTS, EXCHANGES, ORDERS
from tests.infra import create_vhost, delete_vhost
from tests.services.trading import recording

pytestmark = pytest.mark.infra

ROWS = [  # (routing key, created this long ago, published this long ago or None)
    ("old-published-1", "3 hours", "3 hours"),
    ("old-published-2", "2 hours", "2 hours"),
    ("old-published-3", "2 hours", "61 minutes"),
    ("old-unpublished", "5 hours", None),
    ("recent-published", "30 minutes", "30 minutes"),
    ("just-written", "0 seconds", None),
]


async def test_published_rows_are_pruned_after_the_retention_only(
    trading_env: dict[str, str],
) -> None:
    pool = await asyncpg.create_pool(trading_env["DATABASE_URL"], min_size=1, max_size=2)
    try:
        for key, created, published in ROWS:
            await pool.execute(
                "INSERT INTO outbox (exchange, routing_key, payload, created_at, published_at) "
                "VALUES ('mastertrade.orders', $1, '{}'::jsonb, now() - $2::text::interval, "
                "now() - $3::text::interval)", key, created, published,
            )  # fmt: skip
        pruned = await prune_published(pool, keep_seconds=3600, batch=2)  # in two batches
        left = {row["routing_key"] for row in await pool.fetch("SELECT routing_key FROM outbox")}
        again = await prune_published(pool, keep_seconds=3600)
    finally:
        await pool.close()
    assert pruned == 3
    assert left == {"old-unpublished", "recent-published", "just-written"}
    assert again == 0


LEASE_ROWS = [  # (routing key, leased until: this long from now, or None)
    ("no-lease", None),
    ("lease-over", "-1 second"),
    ("leased", "1 hour"),
]


async def test_the_loop_leaves_a_leased_row_to_its_writer_until_the_lease_is_over(
    trading_env: dict[str, str],
) -> None:
    pool = await asyncpg.create_pool(trading_env["DATABASE_URL"], min_size=1, max_size=2)
    try:
        for key, until in LEASE_ROWS:
            await pool.execute(
                "INSERT INTO outbox (exchange, routing_key, payload, leased_until) VALUES "
                "('mastertrade.orders', $1, '{}'::jsonb, now() + $2::text::interval)", key, until,
            )  # fmt: skip
        async with recording(trading_env["RABBITMQ_URL"]) as (recorder, channel):
            sent = await publish_outbox(pool, channel)
            await recorder.wait_for("lease-over")
            await recorder.wait_for("no-lease")
        left = await pool.fetch("SELECT routing_key FROM outbox WHERE published_at IS NULL")
    finally:
        await pool.close()
    assert sent == 2
    assert [row["routing_key"] for row in left] == ["leased"]
    assert recorder.of("leased") == []


async def write_leased(pool: asyncpg.Pool, keys: list[str]) -> list[Written]:
    """Rows as a batch writes them for its sender: leased, in one statement, ids returned."""
    rows = await pool.fetch(
        f"INSERT INTO outbox (exchange, routing_key, payload, leased_until) "
        f"SELECT 'mastertrade.orders', key, json_build_object('key', key), {LEASED_UNTIL} "
        f"FROM unnest($1::text[]) WITH ORDINALITY AS k(key, n) ORDER BY n RETURNING id", keys
    )  # fmt: skip
    return written_in_order(rows, [("mastertrade.orders", key, {"key": key}) for key in keys])


async def unpublished(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch("SELECT routing_key FROM outbox WHERE published_at IS NULL ORDER BY id")
    return [row["routing_key"] for row in rows]


async def test_the_sender_sends_once_and_the_next_transaction_marks_what_was_confirmed(
    trading_env: dict[str, str],
) -> None:
    pool = await asyncpg.create_pool(trading_env["DATABASE_URL"], min_size=1, max_size=2)
    try:
        async with recording(trading_env["RABBITMQ_URL"]) as (recorder, channel):
            sender = OutboxSender(lambda: channel, "test")
            sender.send(await write_leased(pool, ["first", "second"]))
            await sender.drain()
            await recorder.wait_for("second")
            sent_not_marked = await unpublished(pool)
            with pytest.raises(RuntimeError), sender.marking() as confirmed:
                taken_by_a_failed_batch = list(confirmed)
                raise RuntimeError("the batch rolled back")
            async with pool.acquire() as connection, connection.transaction():
                with sender.marking() as confirmed:
                    await mark_sent(connection, confirmed)
            after_mark = await unpublished(pool)
            await publish_outbox(pool, channel)  # the loop finds nothing to send again
            await asyncio.sleep(0.3)
    finally:
        await pool.close()
    assert sent_not_marked == ["first", "second"]
    assert len(taken_by_a_failed_batch) == 2  # given back, then marked by the next one
    assert after_mark == []
    assert [key for key, _ in recorder.messages] == ["first", "second"]


async def test_what_the_sender_failed_to_send_the_loop_sends_once_the_lease_is_over(
    trading_env: dict[str, str],
) -> None:
    pool = await asyncpg.create_pool(trading_env["DATABASE_URL"], min_size=1, max_size=2)
    try:
        broken = await aio_pika.connect(trading_env["RABBITMQ_URL"])
        closed = await broken.channel(publisher_confirms=True)
        await broken.close()  # the broker went away between the commit and the send
        sender = OutboxSender(lambda: closed, "test")
        sender.send(await write_leased(pool, ["lost-send"]))
        await sender.drain()
        with sender.marking() as confirmed:
            nothing_confirmed = list(confirmed)
        async with recording(trading_env["RABBITMQ_URL"]) as (recorder, channel):
            within_lease = await publish_outbox(pool, channel)
            await pool.execute("UPDATE outbox SET leased_until = now() - interval '1 second'")
            after_lease = await publish_outbox(pool, channel)
            await recorder.wait_for("lost-send")
    finally:
        await pool.close()
    assert nothing_confirmed == []
    assert (within_lease, after_lease) == (0, 1)


async def add_rows(pool: asyncpg.Pool, rows: list[tuple[str, str]]) -> None:
    for exchange, key in rows:
        await pool.execute(
            "INSERT INTO outbox (exchange, routing_key, payload) VALUES ($1, $2, '{}'::jsonb)",
            exchange, key,
        )  # fmt: skip


async def held_rows(pool: asyncpg.Pool) -> dict[str, float]:
    """Unpublished rows by routing key: how many seconds until their lease is over."""
    rows = await pool.fetch(
        "SELECT routing_key, extract(epoch FROM leased_until - now())::float8 AS left "
        "FROM outbox WHERE published_at IS NULL"
    )
    return {row["routing_key"]: row["left"] for row in rows}


async def test_an_event_for_an_exchange_outside_the_topology_is_held_and_the_others_go_out_once(
    trading_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    pool = await asyncpg.create_pool(trading_env["DATABASE_URL"], min_size=1, max_size=2)
    try:
        await add_rows(pool, [(ORDERS.name, "before"), ("mastertrade.retired", "retired"),
                              (ORDERS.name, "after")])  # fmt: skip
        async with recording(trading_env["RABBITMQ_URL"]) as (recorder, channel):
            with caplog.at_level(logging.ERROR, "mastertrade.outbox"):
                first = await publish_outbox(pool, channel)
            again = await publish_outbox(pool, channel)
            await recorder.wait_for("after")
            await asyncio.sleep(0.3)
            channel_open = not channel.is_closed
        held = await held_rows(pool)
    finally:
        await pool.close()
    assert (first, again) == (2, 0)
    assert [key for key, _ in recorder.messages] == ["before", "after"]
    assert channel_open  # nothing was published to the exchange the broker lacks
    assert list(held) == ["retired"]
    assert HOLD_SECONDS - 30 < held["retired"] <= HOLD_SECONDS
    assert "mastertrade.retired" in caplog.text and "DELETE FROM outbox" in caplog.text


async def test_an_event_for_an_exchange_deleted_from_the_broker_is_held_until_it_is_declared(
    trading_env: dict[str, str],
) -> None:
    """The broker answers a publish to a missing exchange by closing the channel: the other
    events in flight fail with it and are sent again once it is open. One it had routed but not
    yet confirmed arrives twice (at least once); the channel closes once, not every round."""
    vhost = create_vhost("mastertrade_outbox")
    pool = await asyncpg.create_pool(trading_env["DATABASE_URL"], min_size=1, max_size=2)
    service = await aio_pika.connect_robust(vhost, reconnect_interval=0.2)
    try:
        channel_of_service = await service.channel(publisher_confirms=True)
        async with recording(vhost) as (recorder, channel):
            await (await channel.get_exchange(ALERTS.name)).delete()
            await add_rows(pool, [(ORDERS.name, "before"), (ALERTS.name, "alert.gone"),
                                  *((ORDERS.name, f"after-{n}") for n in range(20))])  # fmt: skip
            sent, deadline = 0, time.monotonic() + 15
            while sent < 21:
                assert time.monotonic() < deadline, f"sent {sent} of 21: {recorder.messages}"
                try:
                    sent += await publish_outbox(pool, channel_of_service)
                except OutboxSendError as error:
                    sent += error.sent  # confirmed and marked before the channel closed
                    await asyncio.sleep(0.1)  # the channel reopens; the next round sends
                except aio_pika.exceptions.AMQPError:
                    await asyncio.sleep(0.1)
            marked = await pool.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL"
            )
            await recorder.wait_for("after-19")
            held = await held_rows(pool)
            released_while_missing = await release_restored(pool, channel_of_service)
            service_channel_closed = channel_of_service.is_closed
            await declare_topology(channel, EXCHANGES, [])  # `mastertrade migrate`
            queue = await channel.declare_queue(exclusive=True)
            await queue.bind(ALERTS.name, "#")
            got: asyncio.Queue[str] = asyncio.Queue()

            async def on_alert(message: AbstractIncomingMessage) -> None:
                await got.put(message.routing_key or "")

            await queue.consume(on_alert, no_ack=True)
            await pool.execute(  # a writer's own, sent by the writer: not the loop's to release
                "INSERT INTO outbox (exchange, routing_key, payload, leased_until) "
                f"VALUES ($1, 'alert.writers', '{{}}'::jsonb, {LEASED_UNTIL})", ALERTS.name,
            )  # fmt: skip
            released = await release_restored(pool, channel_of_service)
            after_declare = await publish_outbox(pool, channel)
            told = await asyncio.wait_for(got.get(), 10)
    finally:
        await service.close()
        await pool.close()
        delete_vhost(vhost)
    arrived = Counter(key for key, _ in recorder.messages)
    assert set(arrived) == {"before", *(f"after-{n}" for n in range(20))}
    assert max(arrived.values()) <= 2
    assert marked == 21
    assert list(held) == ["alert.gone"]
    assert HOLD_SECONDS - 30 < held["alert.gone"] <= HOLD_SECONDS
    # asking the broker about the missing exchange closed no channel of the service's
    assert (released_while_missing, service_channel_closed) == (0, False)
    assert (released, after_declare, told) == (1, 1, "alert.gone")

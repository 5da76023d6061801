"""The outbox on real PostgreSQL and RabbitMQ: published rows are pruned once older than the
retention, never a row still waiting to be published, whatever its age; a row leased to its
writer is its writer's to send until the lease is over, then any loop's; what a sender sent is
marked by the next transaction, and what it failed to send is sent by the loop."""

from __future__ import annotations

import asyncio

import aio_pika
import asyncpg
import pytest

from mastertrade.core.outbox import (
    LEASED_UNTIL,
    OutboxSender,
    Written,
    mark_sent,
    prune_published,
    publish_outbox,
    written_in_order,
)
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

"""The transactional outbox: events stored with the state they describe, published after commit.

A service writes its state change and the events announcing it in one transaction
(`add_to_outbox`), then publishes them (`publish_outbox`). A crash between the commit and the
publish only delays the event: the next flush (a background loop, or start-up) sends it. Delivery
is at least once, so consumers dedupe (by client order id, signal id or an alert's dedup key).
Published rows are kept for an hour (for a person looking into a delivery), then pruned by the
loop (`prune_published`): at 200 signals/s the table would otherwise grow by 70 million rows a
day. What the events describe stays in its own tables (orders, fills, decisions, alerts).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
from aio_pika.abc import AbstractChannel

from mastertrade.core.bus import publish_json
from mastertrade.core.db import Connection

logger = logging.getLogger("mastertrade.outbox")

KEEP_PUBLISHED_SECONDS = 3600
PRUNE_EVERY_SECONDS = 60.0
PRUNE_BATCH = 10_000

Event = tuple[str, str, dict[str, Any]]
"""(exchange, routing key, payload)"""
Written = tuple[int, Event]
"""An event its publisher has just committed, with its outbox id."""

INSERT = "INSERT INTO outbox (exchange, routing_key, payload) VALUES ($1, $2, $3::jsonb)"
# Claimed and marked in one statement; the mark commits only after the broker confirmed, so a
# failed publish rolls it back and a crash leaves the rows unpublished (locked until then: other
# publishers skip them).
CLAIM = """
UPDATE outbox SET published_at = now() WHERE id IN (
    SELECT id FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING id, exchange, routing_key, payload::text AS payload
"""
# The rows a publisher just wrote; one another publisher holds is waited for, then skipped when
# it was sent meanwhile.
MARK_OWN = """
UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[]) AND published_at IS NULL
RETURNING id
"""
# Oldest first along the primary key: published rows are at the front, so the scan stops early.
PRUNE = """
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox WHERE published_at < now() - make_interval(secs => $1)
    ORDER BY id LIMIT $2)
"""


async def add_to_outbox(
    connection: Connection, exchange: str, routing_key: str, payload: dict[str, Any]
) -> None:
    """Queue an event inside the caller's transaction."""
    await connection.execute(INSERT, exchange, routing_key, json.dumps(payload))


async def publish_outbox(pool: asyncpg.Pool, channel: AbstractChannel, batch: int = 100) -> int:
    """Publish unpublished events (confirmed by the broker) and mark them; returns how many.

    Rows are claimed with SKIP LOCKED, so replicas flushing at once never send a row twice in
    the same round; a crash after the publish and before the mark re-sends it (at least once)."""
    sent = 0
    while True:
        async with pool.acquire() as connection, connection.transaction():
            rows = sorted(await connection.fetch(CLAIM, batch), key=lambda row: row["id"])
            # confirms awaited together: one broker round trip for the batch, not one per event
            await asyncio.gather(
                *(
                    publish_json(
                        channel, row["exchange"], row["routing_key"], json.loads(row["payload"])
                    )
                    for row in rows
                )
            )
        sent += len(rows)
        if len(rows) < batch:
            return sent


async def publish_written(
    connection: Connection,
    channel: AbstractChannel,
    written: Sequence[Written],
) -> int:
    """Publish events this process has just committed, as (outbox id, (exchange, routing key,
    payload)), without reading them back: 3 database round trips for any number of events.

    The rows are marked in a transaction that commits only after the broker's confirms, so a
    failed publish or a crash leaves them to `publish_outbox`, and a row another publisher has
    already sent is not sent again."""
    if not written:
        return 0
    async with connection.transaction():
        mine = {row["id"] for row in await connection.fetch(MARK_OWN, [i for i, _ in written])}
        await asyncio.gather(
            *(
                publish_json(channel, exchange, key, payload)
                for outbox_id, (exchange, key, payload) in written
                if outbox_id in mine
            )
        )
    return len(mine)


async def prune_published(
    pool: asyncpg.Pool, keep_seconds: float = KEEP_PUBLISHED_SECONDS, batch: int = PRUNE_BATCH
) -> int:
    """Delete rows published more than `keep_seconds` ago, `batch` at a time; how many."""
    pruned = 0
    while True:
        deleted = int((await pool.execute(PRUNE, keep_seconds, batch)).split()[-1])
        pruned += deleted
        if deleted < batch:
            return pruned


async def run_outbox_loop(
    pool_of: Callable[[], asyncpg.Pool],
    channel_of: Callable[[], AbstractChannel],
    interval: float,
    stop: asyncio.Event,
) -> None:
    """Flush every `interval` seconds until `stop` is set, prune published rows every minute;
    failures are logged and retried."""
    pruned_at = 0.0
    while not stop.is_set():
        try:
            await publish_outbox(pool_of(), channel_of())
            if time.monotonic() - pruned_at >= PRUNE_EVERY_SECONDS:
                pruned_at = time.monotonic()
                if pruned := await prune_published(pool_of()):
                    logger.info("pruned %d outbox rows published over an hour ago", pruned)
        except Exception as error:  # the broker or database is down: the next round retries
            logger.warning("outbox flush failed, retrying in %.1fs: %s", interval, error)
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            continue

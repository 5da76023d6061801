"""The transactional outbox: events stored with the state they describe, published after commit.

A service writes its state change and the events announcing it in one transaction
(`add_to_outbox`), then publishes them (`publish_outbox`). A crash between the commit and the
publish only delays the event: the next flush (a background loop, or start-up) sends it. Delivery
is at least once, so consumers dedupe (by client order id, signal id or an alert's dedup key).
Published rows are kept for an hour (for a person looking into a delivery), then pruned by the
loop (`prune_published`): at 200 signals/s the table would otherwise grow by 70 million rows a
day. What the events describe stays in its own tables (orders, fills, decisions, alerts).

The trading services' batches take a faster way (`OutboxSender`): a batch stores its events
leased to itself (`LEASED_UNTIL`), sends them right after its commit while the next batch goes
ahead, and the next batch's own statement marks what the broker confirmed (`mark_sent_cte`). No
transaction waits on the broker, and no statement or commit is spent on marking.

An event for an exchange the broker does not have (deleted by hand, or retired by an upgrade) is
held back (`HOLD_SECONDS`) and logged with what to do, never dropped; the events around it go
out, and the ones the broker did confirm are not sent again. The loop asks the broker every
`HELD_CHECK_SECONDS` whether a held event's exchange is back (`release_restored`), so they go
out soon after it is declared again, not only when their hold is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiormq
import asyncpg
from aio_pika.abc import AbstractChannel

from mastertrade.core.bus import publish_json
from mastertrade.core.db import Connection
from mastertrade_model.topology import EXCHANGES

logger = logging.getLogger("mastertrade.outbox")

KEEP_PUBLISHED_SECONDS = 3600
PRUNE_EVERY_SECONDS = 60.0
PRUNE_BATCH = 10_000

Event = tuple[str, str, dict[str, Any]]
"""(exchange, routing key, payload)"""
Written = tuple[int, Event]
"""An event its publisher has just committed, with its outbox id."""

LEASE_SECONDS = 5.0
"""How long a sender's rows are its own to send: far longer than a send and its mark take (a
few milliseconds; the quiet-time mark comes with the loop, every second or less), short enough
that what a crash or a broker outage left goes out soon after."""
LEASED_UNTIL = f"now() + interval '{LEASE_SECONDS:g} seconds'"
"""The `leased_until` of a row its writer sends itself (SQL)."""

INSERT = "INSERT INTO outbox (exchange, routing_key, payload) VALUES ($1, $2, $3::jsonb)"
# Claimed and marked in one statement; the mark commits only after the broker confirmed, so a
# failed publish rolls it back and a crash leaves the rows unpublished (locked until then: other
# publishers skip them). A row leased to its writer is left to it until the lease is over.
CLAIM = """
UPDATE outbox SET published_at = now() WHERE id IN (
    SELECT id FROM outbox
    WHERE published_at IS NULL AND (leased_until IS NULL OR leased_until < now())
    ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING id, exchange, routing_key, payload::text AS payload
"""
HOLD_SECONDS = 300.0
"""How long events for an exchange the broker does not have are held back before they are tried
again. Publishing to a missing exchange closes the AMQP channel, and with it the service's
consumers, until it reopens (a robust channel then declares again the exchanges its service
declared: one of the platform's deleted by hand is back after the first such close): a held
event is tried again after a few minutes, not every loop round, or as soon as the loop finds its
exchange back (`release_restored`)."""
HELD_CHECK_SECONDS = 15.0
"""How often the outbox loop asks the broker whether an exchange events are held for is back."""
# A held row's lease runs HOLD_SECONDS; a writer's own lease is never more than LEASE_SECONDS.
_HELD = f"published_at IS NULL AND leased_until > now() + interval '{LEASE_SECONDS:g} seconds'"
HELD_EXCHANGES = f"SELECT DISTINCT exchange FROM outbox WHERE {_HELD} ORDER BY exchange"
RELEASE_RESTORED = f"UPDATE outbox SET leased_until = NULL WHERE exchange = $1 AND {_HELD}"
TOPOLOGY_EXCHANGES = frozenset(exchange.name for exchange in EXCHANGES)
# RabbitMQ's 404 reply to a publish names the exchange it does not have.
NO_EXCHANGE = re.compile(r"no exchange '(?P<name>[^']*)'")
# Claimed rows that were not confirmed go back to unpublished; the held ones leased for a while.
RELEASE = """
UPDATE outbox SET published_at = NULL, leased_until = CASE WHEN id = ANY($2::bigint[])
    THEN now() + make_interval(secs => $3) ELSE leased_until END
WHERE id = ANY($1::bigint[])
"""
MARK_SENT = """
UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[]) AND published_at IS NULL
"""


def written_in_order(rows: Sequence[asyncpg.Record], events: Sequence[Event]) -> list[Written]:
    """The events with the ids of the rows one `INSERT ... RETURNING id` stored them in: the ids
    are taken in the events' order, so sorted they match the events one to one."""
    return list(zip(sorted(row["id"] for row in rows), events, strict=True))


async def mark_sent(connection: Connection | asyncpg.Pool, outbox_ids: Sequence[int]) -> None:
    """Mark these rows sent (those not marked already), when no batch statement does it."""
    if outbox_ids:
        await connection.execute(MARK_SENT, list(outbox_ids))


def mark_sent_cte(parameter: int) -> str:
    """`sent AS (...)`: the part of a batch's statement marking the ids in `$parameter` sent."""
    return f"sent AS ({MARK_SENT.strip().replace('$1', f'${parameter}')})"


# Oldest first along the primary key: published rows are at the front, so the scan stops early.
# The ids are probed one by one in the primary key (`= ANY(ARRAY(...))`): a join with the
# subquery would be planned, generically, as a pass over the whole table.
PRUNE = """
DELETE FROM outbox WHERE id = ANY(ARRAY(
    SELECT id FROM outbox WHERE published_at < now() - make_interval(secs => $1)
    ORDER BY id LIMIT $2))
"""


async def add_to_outbox(
    connection: Connection, exchange: str, routing_key: str, payload: dict[str, Any]
) -> None:
    """Queue an event inside the caller's transaction."""
    await connection.execute(INSERT, exchange, routing_key, json.dumps(payload))


class OutboxSendError(Exception):
    """Some claimed events were not confirmed by the broker; they are sent again next round.
    `sent`: how many of the call's events were confirmed (and marked) before it failed."""

    def __init__(self, message: str, sent: int) -> None:
        super().__init__(message)
        self.sent = sent


def missing_exchange(error: BaseException) -> str | None:
    """The exchange a publish failed for because the broker does not have it, or None."""
    found = isinstance(error, aiormq.exceptions.ChannelNotFoundEntity)
    match = NO_EXCHANGE.search(str(error)) if found else None
    return match["name"] if match else None


@dataclass
class Round:
    """What became of the rows one claim took: confirmed, held back, or to be sent again."""

    confirmed: list[int] = field(default_factory=list)
    held: dict[str, list[int]] = field(default_factory=dict)  # by the missing exchange
    failed: list[BaseException] = field(default_factory=list)
    unsent: list[int] = field(default_factory=list)

    def hold(self, exchange: str, outbox_id: int) -> None:
        self.held.setdefault(exchange, []).append(outbox_id)


async def publish_rows(channel: AbstractChannel, rows: Sequence[asyncpg.Record]) -> Round:
    """Publish the claimed rows, their confirms awaited together (one broker round trip); a row
    naming an exchange outside the topology is held back without being sent."""
    done = Round()
    sendable = []
    for row in rows:
        if row["exchange"] in TOPOLOGY_EXCHANGES:
            sendable.append(row)
        else:
            done.hold(row["exchange"], row["id"])
    results = await asyncio.gather(
        *(
            publish_json(channel, row["exchange"], row["routing_key"], json.loads(row["payload"]))
            for row in sendable
        ),
        return_exceptions=True,
    )
    for row, result in zip(sendable, results, strict=True):
        if result is None:
            done.confirmed.append(row["id"])
        elif missing_exchange(result) == row["exchange"]:
            done.hold(row["exchange"], row["id"])
        else:  # the channel closed under it (by another row's 404, or the broker going away)
            done.unsent.append(row["id"])
            done.failed.append(result)
    return done


def log_held(held: dict[str, list[int]]) -> None:
    """Say which events are held back, for which exchange, and what to do about it."""
    for exchange, outbox_ids in held.items():
        logger.error(
            "%d outbox events for exchange %r are held back: the broker has no such exchange. "
            "If it is one of MasterTrade's, restart the services or run `mastertrade migrate` "
            "to declare it again (they go out within %gs of that); if it was retired, delete "
            "them (DELETE FROM outbox WHERE exchange = %r AND published_at IS NULL). Outbox "
            "ids: %s",
            len(outbox_ids), exchange, HELD_CHECK_SECONDS, exchange, outbox_ids[:10],
        )  # fmt: skip


async def publish_outbox(pool: asyncpg.Pool, channel: AbstractChannel, batch: int = 100) -> int:
    """Publish unpublished events (confirmed by the broker) and mark them; returns how many.

    Rows are claimed with SKIP LOCKED, so replicas flushing at once never send a row twice in
    the same round; a crash after the publish and before the mark re-sends it (at least once).
    Rows the broker did not confirm go back unpublished in the same transaction, and
    `OutboxSendError` is raised after it commits; rows for a missing exchange are held back."""
    sent = 0
    while True:
        async with pool.acquire() as connection, connection.transaction():
            rows = sorted(await connection.fetch(CLAIM, batch), key=lambda row: row["id"])
            done = await publish_rows(channel, rows)
            held = [outbox_id for outbox_ids in done.held.values() for outbox_id in outbox_ids]
            if held or done.unsent:
                await connection.execute(RELEASE, held + done.unsent, held, HOLD_SECONDS)
        log_held(done.held)
        sent += len(done.confirmed)
        if done.failed:
            raise OutboxSendError(
                f"{len(done.unsent)} of {len(rows)} events not confirmed, sent again next "
                f"round ({sent} sent this round): {done.failed[0]!r}",
                sent,
            )
        if len(rows) < batch:
            return sent


async def release_restored(pool: asyncpg.Pool, channel: AbstractChannel) -> int:
    """Hand the events held for a platform exchange the broker has again (a restart or
    `mastertrade migrate` declared it) back to the next flush; how many."""
    released = 0
    for row in await pool.fetch(HELD_EXCHANGES):
        exchange = row["exchange"]
        if exchange in TOPOLOGY_EXCHANGES and await exchange_exists(channel, exchange):
            count = int((await pool.execute(RELEASE_RESTORED, exchange)).split()[-1])
            logger.info("the broker has exchange %r again: its %d held events go out now",
                        exchange, count)  # fmt: skip
            released += count
    return released


@dataclass
class HeldCheck:
    """`release_restored`, at most once every HELD_CHECK_SECONDS: for a loop that flushes more
    often than that."""

    checked_at: float = -math.inf

    async def __call__(self, pool: asyncpg.Pool, channel: AbstractChannel) -> int:
        if time.monotonic() - self.checked_at < HELD_CHECK_SECONDS:
            return 0
        self.checked_at = time.monotonic()
        return await release_restored(pool, channel)


async def exchange_exists(channel: AbstractChannel, name: str) -> bool:
    """Asked on a channel of its own: the broker answers a missing exchange by closing the
    channel it was asked on, which must not be the one the service consumes and publishes on."""
    amqp = await channel.get_underlay_channel()
    probe = await amqp.connection.channel(publisher_confirms=False)
    try:
        await probe.exchange_declare(name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return False
    finally:
        if not probe.is_closed:
            await probe.close()
    return True


class OutboxSender:
    """Sends the events of a service's batches right after each commit, in the background and in
    order, and keeps the outbox ids the broker confirmed until a transaction marks them sent.

    A batch writes its events leased (`LEASED_UNTIL`), takes what was confirmed so far
    (`marking`) into its own statement (`mark_sent_cte`), commits, and hands its events to
    `send`; it never waits for the broker. When no batch comes, the loop marks what is left
    (`mark_confirmed`). A failed send, a crash, or a mark lost with a rolled-back batch only
    sends an event once more (at least once): the loops send a row whose lease is over. A
    service stopping sends and marks what its last batches committed (`finish`)."""

    def __init__(self, channel_of: Callable[[], AbstractChannel], noun: str) -> None:
        self.channel_of, self.noun = channel_of, noun
        self._waiting: list[Written] = []
        self._confirmed: list[int] = []
        self._sending: asyncio.Task[None] | None = None

    def send(self, written: Sequence[Written]) -> None:
        """Send these committed events after those handed over before; returns at once."""
        self._waiting.extend(written)
        if self._waiting and (self._sending is None or self._sending.done()):
            self._sending = asyncio.create_task(self._send_waiting())

    async def _send_waiting(self) -> None:
        while self._waiting:
            written, self._waiting = self._waiting, []
            try:
                channel = self.channel_of()
            except Exception as error:
                self._failed(len(written), error)
                continue
            # confirms awaited together: one broker round trip for them all
            results = await asyncio.gather(
                *(publish_json(channel, *event) for _, event in written), return_exceptions=True
            )
            failures = [result for result in results if result is not None]
            if failures:
                self._failed(len(failures), failures[0])
            self._confirmed.extend(
                outbox_id
                for (outbox_id, _), result in zip(written, results, strict=True)
                if result is None
            )

    def _failed(self, count: int, error: BaseException) -> None:
        logger.warning("sending %d %s events failed, the outbox loop sends them once their %gs "
                       "lease is over: %s", count, self.noun, LEASE_SECONDS, error)  # fmt: skip

    async def drain(self) -> None:
        """Until everything handed over has been sent (or failed to be)."""
        while self._sending is not None and not self._sending.done():
            await asyncio.shield(self._sending)

    @contextlib.contextmanager
    def marking(self) -> Iterator[list[int]]:
        """The ids confirmed so far, for the caller's transaction to mark sent; kept for the
        next one when the block fails."""
        confirmed, self._confirmed = self._confirmed, []
        try:
            yield confirmed
        except BaseException:
            self._confirmed[:0] = confirmed
            raise

    async def finish(self, pool: asyncpg.Pool) -> None:
        """At shutdown: send what is handed over, then mark what was confirmed."""
        await self.drain()
        await self.mark_confirmed(pool)

    async def mark_confirmed(self, pool: asyncpg.Pool) -> int:
        """Mark what was confirmed and no batch has marked (trading went quiet); how many."""
        with self.marking() as confirmed:
            await mark_sent(pool, confirmed)
        return len(confirmed)


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
    sender: OutboxSender | None = None,
) -> None:
    """Flush every `interval` seconds until `stop` is set (first marking what `sender` sent and
    no batch marked), release held events whose exchange is back every HELD_CHECK_SECONDS, prune
    published rows every minute; failures are logged and retried."""
    pruned_at, release_held = 0.0, HeldCheck()
    while not stop.is_set():
        try:
            if sender is not None:
                await sender.mark_confirmed(pool_of())
            await release_held(pool_of(), channel_of())
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

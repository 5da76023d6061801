"""Alert history in PostgreSQL: alerts (deduplicated), their deliveries per channel.

Dedup: under a transaction-scoped advisory lock on the dedup key (so replicas take turns), an
alert whose key was stored before, by an alert delivered (or still being delivered) on at least
one channel or by a repeat suppressed already, is stored as `suppressed` and not delivered,
naming the alert it repeats (`suppressed_by`); so is the same queued message delivered again,
however late and whatever its key (`message_digest`). How far back it looks depends on the key
(domain/dedup.py): a key naming one event (an order's fill, a message's digest) is looked up
with no time limit, so the same event redelivered hours later is still not sent twice; any
other key within the dedup window, so repeats that keep coming (Prometheus re-posts a firing
alert every minute) stay suppressed as long as no gap between two of them is longer than the
window. One that failed or was rate limited everywhere suppresses nothing, nor do the repeats
that name it (they came while it was still being sent): the next repeat is the next chance to
be heard.
A delivery row exists per channel from the start (`pending`), leased to the replica that stored
it (the lease names its dispatcher's `owner`, and runs for the seconds it asks: `LeaseHolder`),
which renews the lease while it delivers (`renew_leases`). Any replica takes over, atomically, a
pending delivery whose lease ran out (`claim_pending`): one a crash or a restart interrupted is
finished, and one a live replica is sending is never sent twice. Only the lease's holder renews
it and records the outcome; a replica that lost a lease (it could not renew it in time) learns
so at its next renewal and stops that delivery. A delivery that reached some of its recipients
records whom it has left (`note_reached`) before it waits to retry them, so the replica that
takes it over sends to those alone (`Claimed.reached`).
An alert is `sent` when every delivery was sent in full, `partial` when some were sent and
others not or not to every recipient (a delivery `sent` with a last error: an e-mail address
refused), else `failed`. A last error is stored without control characters, and as UTF-8
whatever bytes the server answered with (`clean_error`).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, NamedTuple

import asyncpg

from mastertrade.alerts.domain.dedup import dedup_lookback
from mastertrade.alerts.domain.delivery import clean_error
from mastertrade.core.db import Connection
from mastertrade.core.messages import AlertEvent

# The alert a new one with this key repeats: the one delivered (or being delivered) on some
# channel that an alert stored within the window ($2 seconds; ever, for a key naming one event)
# is, or names; none when there is none. Read by alerts_dedup (dedup_key, created_at DESC).
_REPEATED = """
SELECT heard.id FROM alerts a
JOIN alerts heard ON heard.id = COALESCE(a.suppressed_by, a.id)
WHERE a.{column} = $1 {since}
  AND EXISTS (SELECT 1 FROM alert_deliveries d
              WHERE d.alert_id = heard.id AND d.status IN ('sent', 'pending'))
ORDER BY a.created_at DESC LIMIT 1
"""
# Two statements, not one with an optional bound: a plan made for either (PostgreSQL reuses one
# for every call) keeps the window in the index's range, so a key repeated for months is not
# read back to its first row each time it is quiet for longer than the window.
REPEATED_WITHIN = _REPEATED.format(
    column="dedup_key", since="AND a.created_at > now() - make_interval(secs => $2)"
)
REPEATED_EVER = _REPEATED.format(column="dedup_key", since="")  # a key naming one event
# the same queued message again, however late (read by alerts_message_digest)
REPEATED_MESSAGE = _REPEATED.format(column="message_digest", since="")
INSERT = """
INSERT INTO alerts (severity, title, message, kind, dedup_key, source, status, suppressed_by,
                    occurred_at, message_digest)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id
"""


@dataclass(frozen=True)
class Reached:
    """Where a delivery that reached some of its recipients stands: those it has `left` to
    reach, its `attempts` so far, and what they said of recipients no retry will reach."""

    left: list[str]
    attempts: int
    note: str | None


class Claimed(NamedTuple):
    """A pending delivery taken over: its alert, and where it stood (None: nobody got it)."""

    alert_id: int
    channel: str
    alert: AlertEvent
    reached: Reached | None


@dataclass(frozen=True)
class LeaseHolder:
    """The replica a lease names (its dispatcher's `owner`), and how long the lease runs from
    when it is taken or renewed."""

    owner: str
    seconds: float


DELIVERY = """
INSERT INTO alert_deliveries (alert_id, channel, lease_until, lease_owner)
VALUES ($1, $2, now() + make_interval(secs => $3), $4)
"""
MARK = """
UPDATE alert_deliveries SET status = $3, attempts = $4, last_error = $5, updated_at = now()
WHERE alert_id = $1 AND channel = $2 AND lease_owner = $6
"""
SUMMARISE = """
UPDATE alerts SET status = CASE
    WHEN NOT EXISTS (SELECT 1 FROM alert_deliveries WHERE alert_id = $1
                     AND (status <> 'sent' OR last_error IS NOT NULL))
        THEN 'sent'
    WHEN EXISTS (SELECT 1 FROM alert_deliveries WHERE alert_id = $1 AND status = 'pending')
        THEN 'pending'
    WHEN EXISTS (SELECT 1 FROM alert_deliveries WHERE alert_id = $1 AND status = 'sent')
        THEN 'partial'
    ELSE 'failed' END
WHERE id = $1
"""
NOTE_REACHED = """
UPDATE alert_deliveries SET recipients_left = $3, attempts = $4, last_error = $5,
    updated_at = now()
WHERE alert_id = $1 AND channel = $2 AND lease_owner = $6 AND status = 'pending'
"""
CLAIM_LIMIT = 200
"""The most deliveries a replica claims at once (every RENEW_SECONDS): after an outage that
left thousands pending, the replicas share them, those whose lease ran out first before those
released at a shutdown, and none starts a task for each of them at once. In the order of the
pending deliveries' index (migration 0034), so a claim that finds none reads no history."""
CLAIM_PENDING = """
WITH claimable AS (
    SELECT alert_id, channel FROM alert_deliveries
    WHERE status = 'pending' AND (lease_until IS NULL OR lease_until < now())
    ORDER BY lease_until
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE alert_deliveries d SET lease_until = now() + make_interval(secs => $1), lease_owner = $2
FROM claimable c, alerts a
WHERE d.alert_id = c.alert_id AND d.channel = c.channel AND a.id = d.alert_id
RETURNING a.id, a.severity, a.title, a.message, a.kind, a.dedup_key, a.source, d.channel,
    COALESCE(a.occurred_at, a.created_at) AS occurred_at, d.recipients_left, d.attempts,
    d.last_error
"""
# Renews the caller's leases; says of each of its deliveries whether it was renewed and whether
# another replica holds it now (lost; one taken over while this ran reads as neither, until the
# next renewal: not renewed, its lease ages all the same).
RENEW = """
WITH mine AS (
    SELECT * FROM unnest($1::bigint[], $2::text[]) AS m(alert_id, channel)
), renewed AS (
    UPDATE alert_deliveries d SET lease_until = now() + make_interval(secs => $3)
    FROM mine m
    WHERE d.alert_id = m.alert_id AND d.channel = m.channel AND d.status = 'pending'
      AND d.lease_owner = $4
    RETURNING d.alert_id, d.channel
)
SELECT m.alert_id, m.channel, r.alert_id IS NOT NULL AS renewed,
       d.lease_owner IS DISTINCT FROM $4 AS lost
FROM mine m
LEFT JOIN renewed r USING (alert_id, channel)
LEFT JOIN alert_deliveries d USING (alert_id, channel)
"""
# The caller's pending deliveries made claimable at once (it is shutting down).
RELEASE = """
UPDATE alert_deliveries SET lease_until = NULL
WHERE status = 'pending' AND lease_owner = $3
  AND (alert_id, channel) IN (SELECT * FROM unnest($1::bigint[], $2::text[]))
"""
HISTORY = """
SELECT a.id, a.kind, a.severity, a.title, a.message, a.status, a.dedup_key, a.source,
       a.created_at,
       COALESCE((SELECT json_agg(json_build_object('channel', d.channel, 'status', d.status,
                 'attempts', d.attempts, 'last_error', d.last_error) ORDER BY d.channel)
                 FROM alert_deliveries d WHERE d.alert_id = a.id), '[]') AS deliveries
FROM alerts a WHERE $2::text IS NULL OR a.kind = $2 ORDER BY a.id DESC LIMIT $1
"""


async def store_alert(
    pool: asyncpg.Pool,
    alert: AlertEvent,
    channels: list[str],
    dedup_seconds: float,
    holder: LeaseHolder,
    *,
    message_digest: str | None = None,
) -> int | None:
    """The new alert's id, its deliveries pending and leased to `holder`; None when it is a
    duplicate (suppressed): a repeat of its dedup key, or the queued message it came from
    (`message_digest`) again."""
    async with pool.acquire() as connection, connection.transaction():
        return await insert_alert(
            connection, alert, channels, dedup_seconds, holder, message_digest=message_digest
        )


async def insert_alert(
    connection: Connection,
    alert: AlertEvent,
    channels: list[str],
    dedup_seconds: float,
    holder: LeaseHolder,
    *,
    message_digest: str | None = None,
) -> int | None:
    """`store_alert` in the caller's transaction (the daily report commits its claim with it)."""
    repeated: int | None = None
    if message_digest is not None:  # its lock first, then the key's: always in that order
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", message_digest)
        repeated = await connection.fetchval(REPEATED_MESSAGE, message_digest)
    if repeated is None and alert.dedup_key:
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", alert.dedup_key)
        lookback = dedup_lookback(alert.dedup_key, dedup_seconds)
        if lookback is None:
            repeated = await connection.fetchval(REPEATED_EVER, alert.dedup_key)
        else:
            repeated = await connection.fetchval(REPEATED_WITHIN, alert.dedup_key, lookback)
    duplicate = repeated is not None
    status = "suppressed" if duplicate else ("pending" if channels else "failed")
    alert_id: int = await connection.fetchval(
        INSERT,
        alert.severity,
        alert.title,
        alert.message,
        alert.kind,
        alert.dedup_key,
        alert.source,
        status,
        repeated,
        alert.occurred_at,
        message_digest,
    )
    if duplicate:
        return None
    for channel in channels:
        await connection.execute(DELIVERY, alert_id, channel, holder.seconds, holder.owner)
    return alert_id


async def mark_delivery(
    pool: asyncpg.Pool,
    alert_id: int,
    channel: str,
    outcome: tuple[str, int, str | None],
    owner: str,
) -> bool:
    """Record a delivery's (status, attempts, last error) and the alert's overall status;
    False, and nothing recorded, when `owner` no longer holds the delivery's lease."""
    status, attempts, error = outcome
    error = clean_error(error)
    async with pool.acquire() as connection, connection.transaction():
        # one writer per alert at a time, so the summary sees every other channel's outcome
        await connection.execute("SELECT 1 FROM alerts WHERE id = $1 FOR UPDATE", alert_id)
        marked = await connection.execute(MARK, alert_id, channel, status, attempts, error, owner)
        if marked == "UPDATE 0":
            return False
        await connection.execute(SUMMARISE, alert_id)
    return True


async def note_reached(
    pool: asyncpg.Pool, alert_id: int, channel: str, reached: Reached, owner: str
) -> bool:
    """Record whom a delivery that reached some recipients has left to reach, before it waits
    to retry them; False, and nothing recorded, when `owner` no longer holds its lease."""
    note = clean_error(reached.note)
    done = await pool.execute(
        NOTE_REACHED, alert_id, channel, reached.left, reached.attempts, note, owner
    )
    return done != "UPDATE 0"


def _claimed(row: asyncpg.Record) -> Claimed:
    alert = AlertEvent(
        kind=row["kind"],
        severity=row["severity"],
        title=row["title"],
        message=row["message"],
        dedup_key=row["dedup_key"],
        source=row["source"],
        occurred_at=row["occurred_at"],  # the event's time, not the resumption's
    )
    left = row["recipients_left"]
    reached = None if left is None else Reached(list(left), row["attempts"], row["last_error"])
    return Claimed(row["id"], row["channel"], alert, reached)


async def claim_pending(
    pool: asyncpg.Pool, holder: LeaseHolder, limit: int = CLAIM_LIMIT
) -> list[Claimed]:
    """The pending deliveries nobody holds a lease on, `limit` at most (those whose lease ran
    out first), now leased to `holder`."""
    claimed = await pool.fetch(CLAIM_PENDING, holder.seconds, holder.owner, limit)
    return [_claimed(row) for row in sorted(claimed, key=lambda row: row["id"])]


async def renew_leases(
    pool: asyncpg.Pool, deliveries: Collection[tuple[int, str]], holder: LeaseHolder
) -> tuple[set[tuple[int, str]], set[tuple[int, str]]]:
    """Extend `holder`'s leases of the deliveries it is still working on; returns (those
    renewed, those another replica took over: its lease had run out, and `holder` must stop)."""
    if not deliveries:
        return set(), set()
    ids, channels = zip(*deliveries, strict=True)
    rows = await pool.fetch(RENEW, list(ids), list(channels), holder.seconds, holder.owner)
    renewed = {(row["alert_id"], row["channel"]) for row in rows if row["renewed"]}
    return renewed, {(row["alert_id"], row["channel"]) for row in rows if row["lost"]}


async def release_leases(
    pool: asyncpg.Pool, deliveries: Collection[tuple[int, str]], owner: str
) -> None:
    """Give up `owner`'s leases of `deliveries` still pending: any replica may claim them."""
    if deliveries:
        ids, channels = zip(*deliveries, strict=True)
        await pool.execute(RELEASE, list(ids), list(channels), owner)


async def fetch_history(
    pool: asyncpg.Pool, limit: int, kind: str | None = None
) -> list[dict[str, Any]]:
    """The latest `limit` alerts (of one kind when given), newest first, with deliveries."""
    rows = await pool.fetch(HISTORY, limit, kind)
    return [{**dict(row), "deliveries": json.loads(row["deliveries"])} for row in rows]

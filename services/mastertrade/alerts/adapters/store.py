"""Alert history in PostgreSQL: alerts (deduplicated), their deliveries per channel.

Dedup: under a transaction-scoped advisory lock on the dedup key (so replicas take turns), an
alert whose key was stored within the dedup window, and delivered (or still being delivered) on
at least one channel, is stored as `suppressed` and not delivered. One that failed or was rate
limited everywhere suppresses nothing: its repeat is the next chance to be heard.
A delivery row exists per channel from the start (`pending`), leased for LEASE_SECONDS to the
replica that stored it, which renews the lease while it delivers (`renew_leases`). Any replica
takes over, atomically, a pending delivery whose lease ran out (`claim_pending`): one a crash or
a restart interrupted is finished, and one a live replica is sending is never sent twice.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

import asyncpg

from mastertrade.core.db import Connection
from mastertrade.core.messages import AlertEvent

DUPLICATE = """
SELECT 1 FROM alerts a WHERE a.dedup_key = $1 AND a.created_at > now() - make_interval(secs => $2)
  AND EXISTS (SELECT 1 FROM alert_deliveries d
              WHERE d.alert_id = a.id AND d.status IN ('sent', 'pending'))
"""
INSERT = """
INSERT INTO alerts (severity, title, message, kind, dedup_key, source, status)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id
"""
LEASE_SECONDS = 30.0
DELIVERY = """
INSERT INTO alert_deliveries (alert_id, channel, lease_until)
VALUES ($1, $2, now() + make_interval(secs => $3))
"""
MARK = """
UPDATE alert_deliveries SET status = $3, attempts = $4, last_error = $5, updated_at = now()
WHERE alert_id = $1 AND channel = $2
"""
SUMMARISE = """
UPDATE alerts SET status = CASE
    WHEN NOT EXISTS (SELECT 1 FROM alert_deliveries WHERE alert_id = $1 AND status <> 'sent')
        THEN 'sent'
    WHEN EXISTS (SELECT 1 FROM alert_deliveries WHERE alert_id = $1 AND status = 'pending')
        THEN 'pending'
    WHEN EXISTS (SELECT 1 FROM alert_deliveries WHERE alert_id = $1 AND status = 'sent')
        THEN 'partial'
    ELSE 'failed' END
WHERE id = $1
"""
CLAIM_PENDING = """
UPDATE alert_deliveries d SET lease_until = now() + make_interval(secs => $1)
FROM alerts a
WHERE a.id = d.alert_id AND d.status = 'pending'
  AND (d.lease_until IS NULL OR d.lease_until < now())
RETURNING a.id, a.severity, a.title, a.message, a.kind, a.dedup_key, a.source, d.channel
"""
RENEW = """
UPDATE alert_deliveries SET lease_until = now() + make_interval(secs => $3)
WHERE status = 'pending'
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
    pool: asyncpg.Pool, alert: AlertEvent, channels: list[str], dedup_seconds: float
) -> int | None:
    """The new alert's id, its deliveries pending; None when it is a duplicate (suppressed)."""
    async with pool.acquire() as connection, connection.transaction():
        return await insert_alert(connection, alert, channels, dedup_seconds)


async def insert_alert(
    connection: Connection, alert: AlertEvent, channels: list[str], dedup_seconds: float
) -> int | None:
    """`store_alert` in the caller's transaction (the daily report commits its claim with it)."""
    duplicate = False
    if alert.dedup_key:
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", alert.dedup_key)
        duplicate = await connection.fetchval(DUPLICATE, alert.dedup_key, dedup_seconds)
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
    )
    if duplicate:
        return None
    for channel in channels:
        await connection.execute(DELIVERY, alert_id, channel, LEASE_SECONDS)
    return alert_id


async def mark_delivery(
    pool: asyncpg.Pool, alert_id: int, channel: str, outcome: tuple[str, int, str | None]
) -> None:
    """Record a delivery's (status, attempts, last error) and the alert's overall status."""
    status, attempts, error = outcome
    async with pool.acquire() as connection, connection.transaction():
        # one writer per alert at a time, so the summary sees every other channel's outcome
        await connection.execute("SELECT 1 FROM alerts WHERE id = $1 FOR UPDATE", alert_id)
        await connection.execute(MARK, alert_id, channel, status, attempts, error)
        await connection.execute(SUMMARISE, alert_id)


async def claim_pending(pool: asyncpg.Pool) -> list[tuple[int, str, AlertEvent]]:
    """The pending deliveries nobody holds a lease on, now leased to the caller."""
    rows = sorted(await pool.fetch(CLAIM_PENDING, LEASE_SECONDS), key=lambda row: row["id"])
    return [
        (
            row["id"],
            row["channel"],
            AlertEvent(
                kind=row["kind"],
                severity=row["severity"],
                title=row["title"],
                message=row["message"],
                dedup_key=row["dedup_key"],
                source=row["source"],
            ),
        )
        for row in rows
    ]


async def renew_leases(pool: asyncpg.Pool, deliveries: Collection[tuple[int, str]]) -> None:
    """Extend the leases of the deliveries the caller is still working on."""
    if deliveries:
        ids, channels = zip(*deliveries, strict=True)
        await pool.execute(RENEW, list(ids), list(channels), LEASE_SECONDS)


async def fetch_history(
    pool: asyncpg.Pool, limit: int, kind: str | None = None
) -> list[dict[str, Any]]:
    """The latest `limit` alerts (of one kind when given), newest first, with deliveries."""
    rows = await pool.fetch(HISTORY, limit, kind)
    return [{**dict(row), "deliveries": json.loads(row["deliveries"])} for row in rows]

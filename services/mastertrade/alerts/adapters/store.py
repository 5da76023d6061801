"""Alert history in PostgreSQL: alerts (deduplicated), their deliveries per channel.

Dedup: under a transaction-scoped advisory lock on the dedup key (so replicas take turns), an
alert whose key was stored within the dedup window is stored as `suppressed` and not delivered.
A delivery row exists per channel from the start (`pending`), so deliveries interrupted by a
restart are found and finished at start-up.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from mastertrade.core.messages import AlertEvent

DUPLICATE = """
SELECT 1 FROM alerts WHERE dedup_key = $1 AND status <> 'suppressed'
  AND created_at > now() - make_interval(secs => $2)
"""
INSERT = """
INSERT INTO alerts (severity, title, message, kind, dedup_key, source, status)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id
"""
DELIVERY = "INSERT INTO alert_deliveries (alert_id, channel) VALUES ($1, $2)"
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
PENDING = """
SELECT a.id, a.severity, a.title, a.message, a.kind, a.dedup_key, a.source, d.channel
FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id WHERE d.status = 'pending'
ORDER BY a.id
"""
HISTORY = """
SELECT a.id, a.kind, a.severity, a.title, a.message, a.status, a.dedup_key, a.source,
       a.created_at,
       COALESCE((SELECT json_agg(json_build_object('channel', d.channel, 'status', d.status,
                 'attempts', d.attempts, 'last_error', d.last_error) ORDER BY d.channel)
                 FROM alert_deliveries d WHERE d.alert_id = a.id), '[]') AS deliveries
FROM alerts a ORDER BY a.id DESC LIMIT $1
"""


async def store_alert(
    pool: asyncpg.Pool, alert: AlertEvent, channels: list[str], dedup_seconds: float
) -> int | None:
    """The new alert's id, its deliveries pending; None when it is a duplicate (suppressed)."""
    async with pool.acquire() as connection, connection.transaction():
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
            await connection.execute(DELIVERY, alert_id, channel)
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


async def fetch_pending(pool: asyncpg.Pool) -> list[tuple[int, str, AlertEvent]]:
    rows = await pool.fetch(PENDING)
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


async def fetch_history(pool: asyncpg.Pool, limit: int) -> list[dict[str, Any]]:
    rows = await pool.fetch(HISTORY, limit)
    return [{**dict(row), "deliveries": json.loads(row["deliveries"])} for row in rows]

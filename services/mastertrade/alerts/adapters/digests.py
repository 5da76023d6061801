"""Each channel's digest of what its rate limit held back, taken from the alert history.

A delivery the rate limit held back is recorded `rate_limited` (adapters/dispatcher.py). The
digest counts those a digest has not told yet (`told_at` is NULL), by the alert's kind, marks
them told and stores the digest alert, in one transaction: so every held-back delivery is told
once, whichever replica held it back and whether or not that replica is still running, and one
that cannot be stored (the database away) leaves them untold for the next round. Under a
per-channel advisory lock, replicas take turns, and `alert_digests` keeps when each channel's
last digest was raised: at most one every WINDOW_SECONDS, the first at once.
"""

from __future__ import annotations

from collections import Counter

import asyncpg

from mastertrade.alerts.adapters.store import LeaseHolder, insert_alert
from mastertrade.alerts.domain.delivery import WINDOW_SECONDS, held_back_alert
from mastertrade.core.messages import AlertEvent

UNTOLD_CHANNELS = """
SELECT DISTINCT channel FROM alert_deliveries WHERE status = 'rate_limited' AND told_at IS NULL
"""
TOLD_WITHIN = """
SELECT 1 FROM alert_digests WHERE channel = $1 AND told_at > now() - make_interval(secs => $2)
"""
TAKE_UNTOLD = """
WITH told AS (
    UPDATE alert_deliveries SET told_at = now()
    WHERE channel = $1 AND status = 'rate_limited' AND told_at IS NULL
    RETURNING alert_id
)
SELECT a.kind, count(*) AS held FROM told JOIN alerts a ON a.id = told.alert_id GROUP BY a.kind
"""
RECORD_DIGEST = """
INSERT INTO alert_digests (channel, told_at) VALUES ($1, now())
ON CONFLICT (channel) DO UPDATE SET told_at = excluded.told_at
"""


async def untold_channels(pool: asyncpg.Pool) -> set[str]:
    """The channels with held-back deliveries no digest has told yet."""
    return {row["channel"] for row in await pool.fetch(UNTOLD_CHANNELS)}


async def store_digest(
    pool: asyncpg.Pool, channel: str, per_minute: int, holder: LeaseHolder
) -> tuple[int, AlertEvent] | None:
    """Store `channel`'s digest, its delivery pending and leased to `holder`, when one is due:
    its alert id and the alert. None when nothing is left to tell or the channel's last digest
    is less than a window old."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))",
                                 f"alerts_held_back:{channel}")  # fmt: skip
        if await connection.fetchval(TOLD_WITHIN, channel, WINDOW_SECONDS):
            return None
        kinds = Counter({row["kind"]: row["held"] for row in
                         await connection.fetch(TAKE_UNTOLD, channel)})  # fmt: skip
        if not kinds:
            return None
        digest = held_back_alert(channel, kinds, per_minute)
        alert_id = await insert_alert(connection, digest, [channel], 0.0, holder)
        assert alert_id is not None  # a digest has no dedup key: never suppressed
        await connection.execute(RECORD_DIGEST, channel)
        return alert_id, digest

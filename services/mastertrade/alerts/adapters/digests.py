"""Each channel's digest of what its rate limit held back, taken from the alert history.

A delivery the rate limit held back is recorded `rate_limited` (adapters/dispatcher.py). The
digest counts those a digest has not told yet (`told_at` is NULL), by the alert's kind, lists
the titles of the oldest (TITLES_LISTED at most, within TITLES_CHARACTERS, so it fits an SMS:
which order filled, which Prometheus alert resolved), marks them told and stores the digest
alert, in one transaction: so every held-back delivery is told once, whichever replica held it
back and whether or not that replica is still running, and one that cannot be stored (the
database away) leaves them untold for the next round. Under a
per-channel advisory lock, replicas take turns, and `alert_digests` keeps when each channel's
last digest was raised: at most one every WINDOW_SECONDS, the first at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import asyncpg

from mastertrade.alerts.adapters.store import LeaseHolder, insert_alert
from mastertrade.alerts.domain.delivery import WINDOW_SECONDS, held_back_alert
from mastertrade.core.messages import AlertEvent

TITLES_LISTED = 10
TITLES_CHARACTERS = 1000  # the list's share of the digest: all of it within SMS's 1600
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
SELECT a.kind, count(*) AS held, (array_agg(a.id ORDER BY a.id))[1:$2] AS ids,
    (array_agg(a.title ORDER BY a.id))[1:$2] AS titles
FROM told JOIN alerts a ON a.id = told.alert_id GROUP BY a.kind
"""
RECORD_DIGEST = """
INSERT INTO alert_digests (channel, told_at) VALUES ($1, now())
ON CONFLICT (channel) DO UPDATE SET told_at = excluded.told_at
"""


def held_back_titles(titles: Sequence[str], held: int) -> str:
    """The digest's list of what was held back: `titles` (the oldest first) one a line, as many
    as TITLES_LISTED and TITLES_CHARACTERS allow, then how many of the `held` are not listed."""
    lines: list[str] = []
    used = 0
    for title in titles[:TITLES_LISTED]:
        line = "- " + " ".join(title.split())  # one a line, whatever the title's line breaks
        if lines and used + len(line) > TITLES_CHARACTERS:
            break
        lines.append(line)
        used += len(line) + 1
    if held > len(lines):
        lines.append(f"and {held - len(lines)} more")
    return "Held back, oldest first:\n" + "\n".join(lines)


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
        rows = await connection.fetch(TAKE_UNTOLD, channel, TITLES_LISTED)
        if not rows:
            return None
        kinds = Counter({row["kind"]: row["held"] for row in rows})
        # each kind's oldest, merged: the oldest of all are among them
        oldest = sorted(
            pair for row in rows for pair in zip(row["ids"], row["titles"], strict=True)
        )
        listed = held_back_titles([title for _, title in oldest], kinds.total())
        counted = held_back_alert(channel, kinds, per_minute)
        digest = AlertEvent.model_validate(
            counted.model_dump() | {"message": f"{counted.message}\n{listed}"}
        )
        alert_id = await insert_alert(connection, digest, [channel], 0.0, holder)
        assert alert_id is not None  # a digest has no dedup key: never suppressed
        await connection.execute(RECORD_DIGEST, channel)
        return alert_id, digest

"""Removing old alert history from PostgreSQL: one batch of alerts with their deliveries.

An alert older than the retention goes, with its deliveries, `limit` alerts a statement (so no
statement holds its locks for long), unless:
- it is pending: a delivery of it is still being tried, and its outcome must be recorded;
- a repeat still names it (`suppressed_by`): a repeat suppresses the next one only while the
  alert it names is there to show it was delivered, so the alert of a condition firing for
  months stays as long as its repeats keep coming (each goes in its turn); removed, the next
  repeat would be sent again. An alert goes after every repeat naming it (a later batch). A
  repeat stored while the sweep removes the alert it names meets the foreign key: committed
  first, the repeat makes the sweep fail (it runs again); locked first by the sweep, the
  repeat's insert fails instead (its message is handled as a failed one). Only a key that names
  one event looks back past ALERT_DEDUP_SECONDS, so only a copy of an event older than the
  retention, arriving during its sweep, can meet this.
The daily report's claim (`alert_daily_reports`) stays, its foreign key setting `alert_id` to
NULL: the claim is what keeps a day from being reported again. Rows are taken with SKIP LOCKED:
replicas sweeping at once share the work, and none waits on a row another transaction holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

# Old alerts first (alerts_created_id); the repeats naming one are found by alerts_suppressed_by
OLD_ALERTS = """
WITH doomed AS (
    SELECT a.id FROM alerts a
    WHERE a.created_at < now() - make_interval(days => $1) AND a.status <> 'pending'
      AND NOT EXISTS (SELECT 1 FROM alerts r WHERE r.suppressed_by = a.id)
    ORDER BY a.created_at, a.id
    LIMIT $2
    FOR UPDATE OF a SKIP LOCKED
), deliveries AS (
    DELETE FROM alert_deliveries d USING doomed WHERE d.alert_id = doomed.id RETURNING 1
), removed AS (
    DELETE FROM alerts a USING doomed WHERE a.id = doomed.id RETURNING 1
)
SELECT (SELECT count(*) FROM removed) AS alerts, (SELECT count(*) FROM deliveries) AS deliveries
"""


@dataclass(frozen=True)
class Removed:
    """How many alerts, and deliveries of theirs, were removed."""

    alerts: int = 0
    deliveries: int = 0

    def __add__(self, other: Removed) -> Removed:
        return Removed(self.alerts + other.alerts, self.deliveries + other.deliveries)


async def delete_old_alerts(pool: asyncpg.Pool, days: int, limit: int) -> Removed:
    """Remove at most `limit` alerts older than `days` days (those that may go), and their
    deliveries, in one statement."""
    row = await pool.fetchrow(OLD_ALERTS, days, limit)
    assert row is not None  # the statement always returns its one row
    return Removed(row["alerts"], row["deliveries"])

"""How long the alert history is kept: ALERT_HISTORY_DAYS, swept at start-up and every
SWEEP_SECONDS.

Every fill adds an alert and a delivery per channel, and a firing Prometheus alert a suppressed
repeat a minute (1,440 a day): unswept, the tables grow for ever. Each replica sweeps; a sweep
removes SWEEP_BATCH alerts a statement until none that may go is left (adapters/retention.py
says which stay), and logs what it removed. One that fails (the database away) is logged and
runs again at the next sweep, never stopping the service. Dedup looks back at most as far as
the history goes: an event redelivered after ALERT_HISTORY_DAYS would be a new alert.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

from mastertrade.alerts.adapters.retention import Removed, delete_old_alerts

SWEEP_SECONDS = 3600.0
SWEEP_BATCH = 1000
logger = logging.getLogger("mastertrade.alerts")


async def sweep_history(pool: asyncpg.Pool, days: int, batch: int = SWEEP_BATCH) -> Removed:
    """Remove the alerts older than `days` days that may go, batch after batch; what went."""
    removed = Removed()
    try:
        while True:
            # until a batch finds nothing: one may free alerts for the next (a repeat removed
            # lets the alert it named go)
            last = await delete_old_alerts(pool, days, batch)
            removed += last
            if not last.alerts:
                return removed
    finally:  # what went before a failure is said too: those batches are committed
        if removed.alerts:
            logger.info(
                "removed %d alerts older than %d days (ALERT_HISTORY_DAYS), with their %d "
                "deliveries", removed.alerts, days, removed.deliveries,
                extra={"fields": {"alerts_removed": removed.alerts,
                                  "deliveries_removed": removed.deliveries,
                                  "history_days": days}},
            )  # fmt: skip


async def keep_history(
    pool: Callable[[], asyncpg.Pool], days: int, every: float = SWEEP_SECONDS
) -> None:
    """Sweep now, then every `every` seconds, until cancelled."""
    while True:
        try:
            await sweep_history(pool(), days)
        except Exception as error:  # the database is down: the next sweep tries again
            logger.warning("removing alerts older than %d days failed, trying again in %g s: %r",
                           days, every, error)  # fmt: skip
        await asyncio.sleep(every)

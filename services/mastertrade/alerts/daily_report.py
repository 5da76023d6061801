"""The daily report's schedule: at ALERT_DAILY_REPORT_TIME (UTC), one report per trading
environment that has an account; at start-up, the reports that are due if nobody sent them:
one per day since the environment's last report, CATCH_UP_DAYS at most (the older ones are
logged as skipped), oldest first.

Every replica runs this loop. Each (day, environment) is claimed in PostgreSQL in the same
transaction that stores the report's alert (adapters/reports.py), so it is written once, by
whichever replica claims it first, however many replicas run or restart; the alert's deliveries
then go like any other's. The loop wakes at least every CHECK_SECONDS, so a wall clock that
jumps (or a suspended machine) delays a report by minutes at most, and after a failure (the
database down) it tries again after RETRY_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from time import monotonic
from typing import Any

from mastertrade.alerts.adapters.reports import (
    claim_report,
    fetch_environments,
    fetch_figures,
    last_report_end,
    link_report,
)
from mastertrade.alerts.adapters.store import insert_alert
from mastertrade.alerts.domain.report import (
    DAY,
    build_daily_report,
    due_report,
    missed_reports,
    next_report,
    report_day,
)
from mastertrade.alerts.service import AlertService
from mastertrade.core.db import Connection

CHECK_SECONDS = 300.0
RETRY_SECONDS = 30.0
CATCH_UP_DAYS = 7  # the most reports per environment one catch-up writes, the latest included
SLACK_SECONDS = 0.05  # the event loop's clock and the wall clock may differ by this much
logger = logging.getLogger("mastertrade.alerts")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DailyReporter:
    """Writes each report `settle` after its scheduled instant `at`: a fill stamped before the
    instant (the database stamps a transaction's start) but committed after it, or a database
    clock a little behind this one, is then still in the window, not left out of every report."""

    def __init__(
        self,
        service: AlertService,
        at: time,
        settle: timedelta,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.service, self.at, self.settle, self.clock = service, at, settle, clock
        self.checked: datetime | None = None  # the last scheduled instant fully handled here

    async def send_due(self) -> list[int]:
        """Write and start delivering each due report nobody wrote yet, oldest first: for each
        environment, one per day since its last report (CATCH_UP_DAYS at most); the alert ids
        written."""
        end = due_report(self.clock() - self.settle, self.at)
        if end == self.checked:
            return []
        async with self.service.live.pool.acquire() as connection:
            environments = await fetch_environments(connection)
            due = [(ending, environment) for environment in environments
                   for ending in await self._missed(connection, environment, end)]  # fmt: skip
        written = [
            await self._write(ending, environment, end) for ending, environment in sorted(due)
        ]
        self.checked = end
        return [alert_id for alert_id in written if alert_id is not None]

    async def _missed(
        self, connection: Connection, environment: str, end: datetime
    ) -> list[datetime]:
        """The ends of the environment's reports to write now, the latest `end`."""
        last = await last_report_end(connection, environment)
        ends, skipped = missed_reports(last, end, CATCH_UP_DAYS)
        if skipped:
            logger.warning(
                "%d daily reports of %s not written, from %s to %s: the alert system was down "
                "for longer than the %d days a catch-up writes",
                skipped, environment, report_day(ends[0] - DAY * skipped),
                report_day(ends[0] - DAY), CATCH_UP_DAYS,
            )  # fmt: skip
        return ends

    async def _write(self, end: datetime, environment: str, latest: datetime) -> int | None:
        day, names = report_day(end), sorted(self.service.channels)
        leased_at = monotonic()  # the deliveries' leases start in the transaction below
        async with self.service.live.pool.acquire() as connection, connection.transaction():
            if not await claim_report(connection, day, environment, end):
                return None
            figures = await fetch_figures(connection, environment, end - DAY, end)
            # an earlier day's state of the account is not kept: its report shows today's
            late = self.clock() if end < latest else None
            alert = build_daily_report(figures, end, late)
            # the claim is the dedup (a dedup window of 0 s suppresses nothing)
            holder = self.service.dispatcher.holder
            alert_id = await insert_alert(connection, alert, names, 0, holder)
            await link_report(connection, day, environment, alert_id)
        logger.info("daily report %s of %s written (alert %s)", day, environment, alert_id)
        if alert_id is not None:
            self.service.dispatcher.dispatch(alert_id, alert, names, leased_at)
        return alert_id

    async def run(self) -> None:
        """Send what is due now, then each report at its time, until cancelled."""
        while True:
            try:
                await self.send_due()
                now = self.clock()
                wait = (next_report(now - self.settle, self.at) + self.settle - now).total_seconds()
            except Exception as error:
                logger.warning("the daily report is not written yet, retrying: %r", error)
                wait = RETRY_SECONDS
            await asyncio.sleep(min(max(wait, 0.0) + SLACK_SECONDS, CHECK_SECONDS))

    def status(self) -> dict[str, Any]:
        """GET /api/v1/status: the time, the next report, the last one handled by this replica."""
        return {
            "time": self.at.strftime("%H:%M:%S"),
            "next": next_report(self.clock(), self.at).isoformat(),
            "checked": self.checked.isoformat() if self.checked else None,
        }

"""The daily report's catch-up and the rate limit's digest, on real PostgreSQL:
every day missed while the alert system was down gets its report (7 at most, the older ones
logged as skipped), and a digest names the alerts it tells of, not only their count."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from typing import Any, cast

import asyncpg
import pytest

from mastertrade.alerts.adapters.digests import store_digest
from mastertrade.alerts.adapters.store import LeaseHolder, mark_delivery, store_alert
from mastertrade.alerts.daily_report import CATCH_UP_DAYS, DailyReporter
from mastertrade.alerts.domain.report import DAY, due_report, report_day
from mastertrade.alerts.service import AlertService
from mastertrade.core.messages import AlertEvent

pytestmark = pytest.mark.infra

HOLDER = LeaseHolder("replica-test", 60.0)
AT = time(7, 30, tzinfo=UTC)
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)  # the report due is 2026-03-10 07:30's
SETTLE = timedelta(seconds=120)


@pytest.fixture
async def pool(trading_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(trading_env["DATABASE_URL"], min_size=1, max_size=4)
    yield pool
    await pool.close()


class Dispatcher:
    """Records what would be delivered: these tests are about what is written."""

    holder = HOLDER

    def __init__(self) -> None:
        self.dispatched: list[AlertEvent] = []

    def dispatch(self, alert_id: int, alert: AlertEvent, names: list[str], leased: float) -> None:
        self.dispatched.append(alert)


class Service:
    """What the reporter uses of AlertService: the pool, the channels' names, the dispatcher."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.live = type("Live", (), {"pool": pool})()
        self.channels: dict[str, Any] = {"telegram": None}
        self.dispatcher = Dispatcher()


async def reported(pool: asyncpg.Pool, last: datetime | None) -> list[str]:
    """The titles of the reports a start-up at NOW writes, paper's last report ending `last`."""
    await pool.execute(
        "INSERT INTO balances (environment, asset, free) VALUES ('paper', 'USDT', 1)"
    )
    if last is not None:
        await pool.execute("INSERT INTO alert_daily_reports (report_date, environment, window_end) "
                           "VALUES ($1, 'paper', $2)", report_day(last), last)  # fmt: skip
    service = Service(pool)
    reporter = DailyReporter(cast(AlertService, service), AT, SETTLE, clock=lambda: NOW)
    written = await reporter.send_due()
    titles = [alert.title for alert in service.dispatcher.dispatched]
    stored = await pool.fetch(
        "SELECT id, title FROM alerts WHERE kind = 'daily_report' ORDER BY id"
    )
    assert [row["id"] for row in stored] == written and [r["title"] for r in stored] == titles
    return titles


async def test_every_day_missed_since_the_last_report_is_reported_oldest_first(
    pool: asyncpg.Pool,
) -> None:
    """The alert system was down across two report times: the day before yesterday's report
    and yesterday's were written, then the due one; before, only the due one was."""
    due = due_report(NOW, AT)
    titles = await reported(pool, due - DAY * 3)
    assert titles == [f"Daily report {(due - DAY * n).date()} (paper)" for n in (2, 1, 0)]
    messages = await pool.fetch("SELECT message FROM alerts ORDER BY id")
    late = [row["message"].splitlines()[1].startswith("Written late") for row in messages]
    assert late == [True, True, False]  # their equity and positions are today's: said so


async def test_a_catch_up_writes_a_week_at_most_and_logs_the_days_it_skips(
    pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    due = due_report(NOW, AT)
    with caplog.at_level(logging.WARNING, "mastertrade.alerts"):
        titles = await reported(pool, due - DAY * 10)
    assert titles == [
        f"Daily report {(due - DAY * n).date()} (paper)" for n in range(CATCH_UP_DAYS - 1, -1, -1)
    ]
    first, last = (due - DAY * 9).date(), (due - DAY * 7).date()
    assert (f"3 daily reports of paper not written, from {first} to {last}: the alert system "
            "was down for longer than the 7 days a catch-up writes") in caplog.messages  # fmt: skip


async def test_with_no_report_yet_only_the_due_one_is_written(pool: asyncpg.Pool) -> None:
    assert await reported(pool, None) == [f"Daily report {due_report(NOW, AT).date()} (paper)"]


async def held_back(pool: asyncpg.Pool, channel: str, titles: list[str]) -> None:
    """Alerts titled `titles` (in this order) that the rate limit held back on `channel`."""
    for title in titles:
        alert = AlertEvent(kind="order_filled" if "Filled" in title else "prometheus", title=title)
        alert_id = await store_alert(pool, alert, [channel], 300.0, HOLDER)
        assert alert_id is not None
        limited = ("rate_limited", 0, "over 20 per minute")
        assert await mark_delivery(pool, alert_id, channel, limited, HOLDER.owner)


async def test_the_digest_names_what_was_held_back(pool: asyncpg.Pool) -> None:
    """Which order filled, which Prometheus alert resolved: the oldest listed by title, the
    rest counted, the message within an SMS."""
    fills = [f"Filled: buy 0.0{n} BTCUSDT at 30000 (live)" for n in range(1, 10)]
    titles = [fills[0], "[RESOLVED] MarketDataStale", *fills[1:], "[FIRING] DiskFull"]
    await held_back(pool, "sms", titles)
    stored = await store_digest(pool, "sms", 20, HOLDER)
    assert stored is not None
    alert_id, digest = stored
    listed = digest.message.split("\nHeld back, oldest first:\n")[1].splitlines()
    assert listed == [f"- {title}" for title in titles[:10]] + ["and 1 more"]
    assert len(f"[{digest.severity.upper()}] {digest.title}\n{digest.message}") <= 1600
    assert await pool.fetchval("SELECT message FROM alerts WHERE id = $1", alert_id) == (
        digest.message
    )

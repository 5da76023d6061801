"""The alert history's retention on real PostgreSQL: alerts older than ALERT_HISTORY_DAYS go
with their deliveries, in batches; recent and pending ones stay, and so does an old alert that
a kept repeat still names (it is what keeps a firing alert's repeats suppressed); a daily
report's claim outlives its alert, so the day is never reported again; the service sweeps at
start-up, and a sweep that fails is logged and tried again."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from mastertrade.alerts.adapters.retention import OLD_ALERTS, Removed
from mastertrade.alerts.adapters.store import LeaseHolder, mark_delivery, store_alert
from mastertrade.alerts.retention import keep_history, sweep_history
from mastertrade.core.background import stop_task
from mastertrade.core.messages import AlertEvent
from tests.services.helpers import running, wait_for_status
from tests.services.test_alerts_daily_report import checked
from tests.services.trading import build_app as build_service

pytestmark = pytest.mark.infra

HOLDER = LeaseHolder("a", 60)
ALERT = AlertEvent(kind="custom", severity="warning", title="drawdown 9%")


@pytest.fixture
async def pool(trading_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(trading_env["DATABASE_URL"], min_size=1, max_size=4)
    yield pool
    await pool.close()


async def stored(
    pool: asyncpg.Pool, alert: AlertEvent = ALERT, channels: Sequence[str] = ("hook", "mail")
) -> int | None:
    return await store_alert(pool, alert, list(channels), 300, HOLDER)


async def delivered(
    pool: asyncpg.Pool, alert: AlertEvent = ALERT, status: str = "sent", channels: int = 2
) -> int:
    """An alert stored and its deliveries ended with `status`."""
    names = ["hook", "mail"][:channels]
    alert_id = await stored(pool, alert, names)
    assert alert_id is not None
    for name in names:
        assert await mark_delivery(pool, alert_id, name, (status, 1, None), HOLDER.owner)
    return alert_id


async def age(pool: asyncpg.Pool, ids: Sequence[int | None], days: float) -> None:
    await pool.execute("UPDATE alerts SET created_at = now() - make_interval(secs => $2) "
                       "WHERE id = ANY($1::bigint[])", list(ids), days * 86400)  # fmt: skip


async def alert_ids(pool: asyncpg.Pool) -> set[int]:
    return {row["id"] for row in await pool.fetch("SELECT id FROM alerts")}


async def test_old_alerts_go_with_their_deliveries_and_recent_and_pending_ones_stay(
    pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    old = [await delivered(pool), await delivered(pool, status="failed"),
           await delivered(pool, status="rate_limited", channels=1)]  # fmt: skip
    no_channel = await stored(pool, channels=())  # failed at once, no delivery
    pending = await stored(pool)  # still being tried (a channel down for months)
    recent = await delivered(pool)
    await age(pool, [*old, no_channel, pending], days=91)
    await age(pool, [recent], days=89)
    with caplog.at_level(logging.INFO, "mastertrade.alerts"):
        removed = await sweep_history(pool, 90, batch=2)
        again = await sweep_history(pool, 90, batch=2)
    assert removed == Removed(alerts=4, deliveries=5) and again == Removed(alerts=0, deliveries=0)
    assert await alert_ids(pool) == {pending, recent}
    orphans = "SELECT count(*) FROM alert_deliveries WHERE alert_id <> ALL($1::bigint[])"
    assert await pool.fetchval(orphans, [pending, recent]) == 0
    [line] = [record for record in caplog.records if "removed" in record.getMessage()]
    assert line.getMessage() == (
        "removed 4 alerts older than 90 days (ALERT_HISTORY_DAYS), with their 5 deliveries"
    )
    assert line.__dict__["fields"] == {"alerts_removed": 4, "deliveries_removed": 5,
                                       "history_days": 90}  # fmt: skip


async def test_an_old_alert_its_kept_repeats_name_stays_and_keeps_them_suppressed(
    pool: asyncpg.Pool,
) -> None:
    """Prometheus re-posts a firing alert every minute for months: its first alert, the one
    delivered, stays while repeats naming it are kept, or the next repeat would be sent again.
    An alert whose repeats are all old goes after them (one a batch here, oldest first: the
    alert itself would come first, and go while its repeats still named it)."""
    firing = AlertEvent(kind="prometheus", title="[FIRING] MarketDataStale",
                        dedup_key="am:abc:firing:2026-01-01T00:00:00Z")  # fmt: skip
    quiet = AlertEvent(kind="prometheus", title="[FIRING] DiskFull",
                       dedup_key="am:def:firing:2026-01-01T00:00:00Z")  # fmt: skip
    first = await delivered(pool, firing)
    old_repeat, recent_repeat = [await stored(pool, firing) for _ in range(2)]
    await delivered(pool, quiet)
    quiet_repeats = [await stored(pool, quiet) for _ in range(2)]
    legacy = await pool.fetchval(  # a repeat stored before 0038: it names nothing
        "INSERT INTO alerts (severity, title, kind, dedup_key, status) "
        "VALUES ('info', 'old', 'prometheus', 'am:ghi', 'suppressed') RETURNING id"
    )
    assert (old_repeat, recent_repeat, *quiet_repeats) == (None,) * 4  # suppressed, stored
    kept_repeat = await pool.fetchval("SELECT max(id) FROM alerts WHERE suppressed_by = $1", first)
    quiet_ids = await pool.fetch("SELECT id FROM alerts WHERE dedup_key = $1", quiet.dedup_key)
    await age(pool, [first, *(row["id"] for row in quiet_ids), legacy], days=100)
    await age(pool, [kept_repeat - 1], days=99)
    await age(pool, [kept_repeat], days=60 / 86400)  # a minute ago

    removed = await sweep_history(pool, 90, batch=1)
    assert removed == Removed(alerts=5, deliveries=2)  # 1 firing repeat, quiet's 3, legacy
    assert await alert_ids(pool) == {first, kept_repeat}
    assert await stored(pool, firing) is None  # still suppressed, naming the first
    assert await pool.fetchval("SELECT max(suppressed_by) FROM alerts") == first
    assert await stored(pool, quiet) is not None  # its history gone: heard, nothing broken


async def test_a_daily_reports_claim_outlives_its_alert_and_the_day_is_not_reported_again(
    trading_env: dict[str, str], pool: asyncpg.Pool
) -> None:
    end = (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0)
    await pool.execute(
        "INSERT INTO balances (environment, asset, free) VALUES ('paper', 'USDT', 1)"
    )
    env = {**trading_env, "ALERT_DAILY_REPORT_TIME": f"{end:%H:%M:%S}",
           "ALERT_DAILY_REPORT_SETTLE_SECONDS": "1"}  # fmt: skip
    async with running(build_service("alert_system", env)) as client:
        await wait_for_status(client, "/health", 200)
        await checked([client], end)
    [report] = await alert_ids(pool)
    await age(pool, [report], days=91)
    assert await sweep_history(pool, 90) == Removed(alerts=1, deliveries=0)
    claim = await pool.fetchrow("SELECT report_date, alert_id FROM alert_daily_reports")
    async with running(build_service("alert_system", env)) as client:  # a restart
        await wait_for_status(client, "/health", 200)
        await checked([client], end)
        await asyncio.sleep(0.5)  # a report written again would be stored by now
    assert claim is not None and (claim["report_date"], claim["alert_id"]) == (end.date(), None)
    assert await alert_ids(pool) == set()


async def wait_for_alerts(pool: asyncpg.Pool, expected: set[int], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (found := await alert_ids(pool)) != expected:
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.1)


async def test_the_service_sweeps_at_start_up(
    trading_env: dict[str, str], pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    old = [await delivered(pool), await delivered(pool)]
    recent = await delivered(pool)
    await age(pool, old, days=31)
    env = {**trading_env, "ALERT_HISTORY_DAYS": "30"}
    with caplog.at_level(logging.INFO, "mastertrade.alerts"):
        async with running(build_service("alert_system", env)) as client:
            await wait_for_status(client, "/health", 200)
            await wait_for_alerts(pool, {recent})
    assert "removed 2 alerts older than 30 days (ALERT_HISTORY_DAYS)" in caplog.text


async def test_a_sweep_that_fails_is_logged_and_tried_again(
    pool: asyncpg.Pool, trading_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    old = await delivered(pool)
    await age(pool, [old], days=91)
    down = await asyncpg.create_pool(trading_env["DATABASE_URL"], min_size=0)
    await down.close()  # the database is away at the first sweep
    pools = iter([down])
    with caplog.at_level(logging.INFO, "mastertrade.alerts"):
        task = asyncio.create_task(keep_history(lambda: next(pools, pool), 90, every=0.05))
        try:
            await wait_for_alerts(pool, set())
        finally:
            await stop_task(task)
    assert "removing alerts older than 90 days failed, trying again in 0.05 s" in caplog.text
    assert "removed 1 alerts older than 90 days" in caplog.text


# What PostgreSQL runs for each alert removed: the check of the repeats' foreign key (NO
# ACTION) and the daily report claim's ON DELETE SET NULL
FOREIGN_KEYS = {
    "alerts_suppressed_by": "SELECT 1 FROM ONLY alerts x WHERE $1 OPERATOR(pg_catalog.=) "
    "suppressed_by FOR KEY SHARE OF x",
    "alert_daily_reports_alert": "UPDATE ONLY alert_daily_reports SET alert_id = NULL "
    "WHERE $1 OPERATOR(pg_catalog.=) alert_id",
}


async def test_the_sweep_finds_what_to_remove_by_index(trading_env: dict[str, str]) -> None:
    """The rows naming an alert are found by index (the repeats by the sweep, and both by the
    foreign keys each time an alert is removed), not by reading every row."""
    connection = await asyncpg.connect(trading_env["DATABASE_URL"])
    try:
        await connection.execute("SET enable_seqscan = off")  # small tables: no shortcut
        plan = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {OLD_ALERTS}", 90, 1000)
        checks = {
            index: await connection.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", 1)
            for index, sql in FOREIGN_KEYS.items()
        }
    finally:
        await connection.close()
    assert '"Index Name": "alerts_suppressed_by"' in plan
    assert '"Index Name": "alerts_created_id"' in plan
    for index, check in checks.items():
        assert f'"Index Name": "{index}"' in check, index

"""The daily report on real PostgreSQL: seeded fills, rejections, equity, breaker and positions
around the report's window, its figures checked against ones computed here from the seed;
once per (day, environment) across two replicas and a restart; the catch-up at start-up and
the report at its time while running."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.services.fake_channels import FakeChannels, build_app, smtp_server
from tests.services.helpers import running, wait_for_status
from tests.services.test_alerts import ADMIN, TEST_ALERT, channel_env, settled
from tests.services.trading import build_app as build_service
from tests.services.trading import serve_app

pytestmark = pytest.mark.infra

D = Decimal
HOUR = timedelta(hours=1)
# (order, price, quantity, fee, fee asset, filled this long before the window's end)
FILLS = [
    ("p-1", D("30000.5"), D("0.01"), D("0.300005"), "USDT", HOUR * 2),
    ("p-1", D("30010"), D("0.02"), D("0.6002"), "USDT", HOUR),
    ("p-2", D("2000.25"), D("0.5"), D("0.0001"), "BNB", HOUR * 3),
    ("p-3", D("100"), D("1"), D("0.1"), "USDT", HOUR * 25),  # the day before
    ("p-3", D("101"), D("1"), D("0.1"), "USDT", -timedelta(seconds=30)),  # after the window
]
EQUITY, PEAK = D("9500.123"), D("10250.5")
BREAKER_REASON = "drawdown 7.32% reached the limit"


def plain(amount: Decimal) -> str:
    return format(amount.normalize(), "f")


async def seed(url: str, end: datetime) -> None:
    """Paper: the fills above, rejections in and out of the window, a breaker open below the
    peak, two open positions and a closed one. Live: an account and nothing else."""
    connection = await asyncpg.connect(url)
    try:
        orders = [("p-1", "filled"), ("p-2", "filled"), ("p-3", "filled"),
                  ("r-in", "rejected"), ("r-out", "rejected"), ("c-in", "cancelled")]  # fmt: skip
        updated = {"r-out": end - HOUR * 30}
        for order, status in orders:
            await connection.execute(
                "INSERT INTO orders (client_order_id, symbol, side, type, quantity, status, "
                "environment, updated_at) VALUES ($1, 'BTCUSDT', 'buy', 'market', 1, $2, "
                "'paper', $3)",
                order, status, updated.get(order, end - HOUR * 5),
            )  # fmt: skip
        for number, (order, price, quantity, fee, asset, before) in enumerate(FILLS):
            await connection.execute(
                "INSERT INTO fills (client_order_id, fill_id, price, quantity, fee, fee_asset, "
                "filled_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                order, f"f-{number}", price, quantity, fee, asset, end - before,
            )  # fmt: skip
        decisions = [("s-1", "rejected", HOUR), ("s-2", "rejected", HOUR * 23),
                     ("s-3", "rejected", HOUR * 24 + timedelta(seconds=1)),
                     ("s-4", "approved", HOUR)]  # fmt: skip
        for signal, outcome, before in decisions:
            await connection.execute(
                "INSERT INTO risk_decisions (signal_id, environment, symbol, side, outcome, "
                "requested_quantity, approved_quantity, price, decided_at) "
                "VALUES ($1, 'paper', 'BTCUSDT', 'buy', $2, 1, 0, 100, $3)",
                signal, outcome, end - before,
            )  # fmt: skip
        for symbol, held, average in [("BTCUSDT", "0.03", "30006.8"), ("ETHUSDT", "0", "0"),
                                      ("SOLUSDT", "12.5", "150.2")]:  # fmt: skip
            await connection.execute(
                "INSERT INTO positions (environment, symbol, quantity, average_price) "
                "VALUES ('paper', $1, $2, $3)", symbol, D(held), D(average),
            )  # fmt: skip
        for environment, equity in [("paper", EQUITY), ("live", D("1000"))]:
            await connection.execute(
                "INSERT INTO account_equity (environment, cash, positions_value, equity) "
                "VALUES ($1, $2, 0, $2)", environment, equity,
            )  # fmt: skip
        # after the equity: whatever raises the peak from the equity, this is the state now
        for environment, peak, open_, reason in [("paper", PEAK, True, BREAKER_REASON),
                                                 ("live", D("1000"), False, None)]:  # fmt: skip
            await connection.execute(
                "INSERT INTO risk_state (environment, equity_peak, breaker_open, breaker_reason) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (environment) DO UPDATE SET "
                "equity_peak = $2, breaker_open = $3, breaker_reason = $4",
                environment, peak, open_, reason,
            )  # fmt: skip
    finally:
        await connection.close()


def expected_paper(end: datetime) -> str:
    """The paper report's text, from the seed."""
    start = end - timedelta(days=1)
    inside = [f for f in FILLS if start <= end - f[5] < end]
    value = sum((price * quantity for _, price, quantity, *_ in inside), D(0))
    fees = {
        asset: sum((f[3] for f in inside if f[4] == asset), D(0)) for _, _, _, _, asset, _ in inside
    }
    drawdown = ((PEAK - EQUITY) * 100 / PEAK).quantize(D("0.01"), ROUND_HALF_UP)
    return "\n".join([
        f"[INFO] Daily report {end.date()} (paper)",
        f"Period: {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC",
        f"Fills: {len(inside)}, traded value {plain(value)}, "
        f"fees {plain(fees['BNB'])} BNB, {plain(fees['USDT'])} USDT",
        "Orders rejected by the executor: 1",
        "Signals rejected by the risk manager: 2",
        f"Equity: {plain(EQUITY)}, peak {plain(PEAK)}, drawdown from the peak {drawdown}%",
        f"Circuit breaker: open ({BREAKER_REASON})",
        "Open positions (2): BTCUSDT 0.03 at 30006.8; SOLUSDT 12.5 at 150.2",
    ])  # fmt: skip


def expected_live(end: datetime) -> str:
    start = end - timedelta(days=1)
    return "\n".join([
        f"[INFO] Daily report {end.date()} (live)",
        f"Period: {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC",
        "Fills: 0, traded value 0, fees 0",
        "Orders rejected by the executor: 0",
        "Signals rejected by the risk manager: 0",
        "Equity: 1000, peak 1000, drawdown from the peak 0.00%",
        "Circuit breaker: closed",
        "Open positions: none",
    ])  # fmt: skip


@asynccontextmanager
async def channel_servers(tmp_path: Path) -> AsyncIterator[tuple[FakeChannels, dict[str, str]]]:
    """The local channel servers, kept across the replicas and restarts of one test."""
    fake = FakeChannels()
    with smtp_server(tmp_path) as (_, smtp_port, ca):
        async with serve_app(build_app(fake)) as url:
            yield fake, channel_env(url, smtp_port, ca)


@asynccontextmanager
async def replicas(env: dict[str, str], count: int) -> AsyncIterator[list[httpx.AsyncClient]]:
    """`count` alert systems on one database, started at the same time."""
    async with AsyncExitStack() as stack:
        apps = [build_service("alert_system", env) for _ in range(count)]
        clients = await asyncio.gather(*(stack.enter_async_context(running(a)) for a in apps))
        for client in clients:
            await wait_for_status(client, "/health", 200)
        yield list(clients)


async def checked(clients: Sequence[httpx.AsyncClient], end: datetime) -> None:
    """Wait until every replica has handled the report due at `end`."""
    deadline = time.monotonic() + 15
    for client in clients:
        while True:
            report = (await client.get("/api/v1/status")).json()["daily_report"]
            if report["checked"] and datetime.fromisoformat(report["checked"]) == end:
                break
            assert time.monotonic() < deadline, report
            await asyncio.sleep(0.1)


async def all_reports(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every daily report stored, once the first two are delivered."""
    await settled(client, 2, kind="daily_report")
    params: dict[str, Any] = {"kind": "daily_report", "limit": 500}
    found: list[dict[str, Any]] = (await client.get("/api/v1/alerts", params=params)).json()
    return found


def report_texts(fake: FakeChannels) -> list[str]:
    texts = [body["text"] for body in fake.received.get("telegram", [])]
    return sorted(text for text in texts if "Daily report" in text)


async def test_the_report_is_right_and_sent_once_by_two_replicas_and_after_a_restart(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    end = (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0)
    await seed(trading_env["DATABASE_URL"], end)
    async with channel_servers(tmp_path) as (fake, channels):
        env = {**trading_env, **channels, "ALERT_DAILY_REPORT_TIME": f"{end:%H:%M:%S}",
               "ALERT_DAILY_REPORT_SETTLE_SECONDS": "1"}  # fmt: skip
        async with replicas(env, 2) as clients:
            await checked(clients, end)
            reports = await all_reports(clients[0])
            first = report_texts(fake)
        async with replicas(env, 1) as [client]:  # a restart: the report is not sent again
            await checked([client], end)
            await asyncio.sleep(0.5)  # a report the restart wrote would be stored by now
            again = await all_reports(client)
    assert first == sorted([expected_paper(end), expected_live(end)])
    assert report_texts(fake) == first
    assert [a["id"] for a in again] == [a["id"] for a in reports] and len(reports) == 2
    assert {(a["severity"], a["status"], a["source"]) for a in reports} == {
        ("info", "sent", "alert_system")
    }


async def test_a_missed_report_is_caught_up_at_start_and_the_next_sent_at_its_time(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=6)).replace(microsecond=0)
    connection = await asyncpg.connect(trading_env["DATABASE_URL"])
    try:
        await connection.execute(
            "INSERT INTO balances (environment, asset, free) VALUES ('paper', 'USDT', 100)"
        )
    finally:
        await connection.close()
    async with channel_servers(tmp_path) as (fake, channels):
        env = {**trading_env, **channels, "ALERT_DAILY_REPORT_TIME": f"{soon:%H:%M:%S}",
               "ALERT_DAILY_REPORT_SETTLE_SECONDS": "2"}  # fmt: skip
        async with replicas(env, 1) as [client]:
            await checked([client], soon - timedelta(days=1))
            caught_up: list[dict[str, Any]] = await settled(client, 1, kind="daily_report")
            await checked([client], soon)
            both = await settled(client, 2, kind="daily_report")
    yesterday, today = (soon - timedelta(days=1)).date(), soon.date()
    assert [a["title"] for a in caught_up] == [f"Daily report {yesterday} (paper)"]
    assert [a["title"] for a in reversed(both)] == [
        f"Daily report {yesterday} (paper)",
        f"Daily report {today} (paper)",
    ]
    # written once settled, not at the scheduled instant: late commits of the day are in it
    assert datetime.fromisoformat(both[0]["created_at"]) >= soon + timedelta(seconds=2)
    assert "Equity: not valued yet" in both[0]["message"]
    assert len(report_texts(fake)) == 2


async def test_reports_go_out_over_the_rate_limit_and_count_toward_it(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    """One delivery a minute per channel, and two reports (paper and live) due at once: both are
    delivered on every channel (written once, a report held back would never be sent), and they
    count, so a test alert right after them is held back."""
    end = (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0)
    connection = await asyncpg.connect(trading_env["DATABASE_URL"])
    try:
        await connection.execute(
            "INSERT INTO balances (environment, asset, free) "
            "VALUES ('paper', 'USDT', 100), ('live', 'USDT', 100)"
        )
    finally:
        await connection.close()
    async with channel_servers(tmp_path) as (fake, channels):
        env = {**trading_env, **channels, "ALERT_DAILY_REPORT_TIME": f"{end:%H:%M:%S}",
               "ALERT_DAILY_REPORT_SETTLE_SECONDS": "1",
               "ALERT_RATE_LIMIT_PER_MINUTE": "1"}  # fmt: skip
        async with replicas(env, 1) as [client]:
            await checked([client], end)
            reports = await settled(client, 2, kind="daily_report")
            body = {"channel": "telegram"}
            await client.post(TEST_ALERT, json=body, headers=ADMIN)
            [test] = await settled(client, 1, kind="test")
    assert len(reports) == 2 and len(report_texts(fake)) == 2
    assert {d["status"] for a in reports for d in a["deliveries"]} == {"sent"}, reports
    assert [d["status"] for d in test["deliveries"]] == ["rate_limited"]

"""The metrics the alerting rules and the trading dashboard read, from the state they describe:
the risk manager's gauges from PostgreSQL (account, breaker, positions, orders, fills,
decisions, strategies, backups), backup runs recorded by the backup script itself, and
Prometheus' alerts taken by the alert system's Alertmanager API v2."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from mastertrade.alerts.domain.events import PostableAlert, build_from_postable
from mastertrade.core.consumer import Consumer
from mastertrade.migrations.runner import migrate_database
from mastertrade.risk.portfolio_metrics import PortfolioMetrics, drawdown
from mastertrade_model.topology import Queue
from tests.chart.test_backup_restore import clean_environ
from tests.helm import CHART
from tests.infra import create_database, create_vhost, delete_vhost, drop_database, free_port
from tests.services.test_alerts import alert_system, settled

pytestmark = pytest.mark.infra

STATE = """
INSERT INTO risk_state (environment, equity_peak, breaker_open, kill_switch)
    VALUES ('paper', 12000, true, false);
INSERT INTO account_equity (environment, cash, positions_value, equity)
    VALUES ('paper', 6000.5, 4000.25, 10000.75);
INSERT INTO positions (environment, symbol, quantity, average_price) VALUES
    ('paper', 'BTCUSDT', 0.05, 40000), ('paper', 'ETHUSDT', 0, 2000);
INSERT INTO orders (client_order_id, symbol, side, type, quantity, status, environment) VALUES
    ('a', 'BTCUSDT', 'buy', 'market', 0.05, 'filled', 'paper'),
    ('b', 'ETHUSDT', 'buy', 'market', 1, 'rejected', 'paper'),
    ('c', 'ETHUSDT', 'sell', 'market', 1, 'filled', 'live');
INSERT INTO fills (client_order_id, fill_id, price, quantity) VALUES
    ('a', '1', 40000, 0.02), ('a', '2', 40000, 0.03), ('c', '1', 2000, 1);
INSERT INTO risk_decisions (signal_id, environment, symbol, side, outcome, requested_quantity,
    approved_quantity, price) VALUES
    ('s1', 'paper', 'BTCUSDT', 'buy', 'approved', 0.05, 0.05, 40000),
    ('s2', 'paper', 'ETHUSDT', 'buy', 'rejected', 1, 0, 2000);
INSERT INTO strategies (name, status) VALUES ('x', 'active'), ('y', 'active'), ('z', 'retired');
"""


@pytest.fixture
def migrated() -> Iterator[str]:
    url = create_database("mastertrade_metrics")
    try:
        asyncio.run(migrate_database(url, 30.0, lambda line: None))
        yield url
    finally:
        drop_database(url)


async def execute(url: str, sql: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def refreshed(url: str) -> CollectorRegistry:
    registry = CollectorRegistry()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    try:
        await PortfolioMetrics(registry, "paper", Decimal("0.15")).refresh(pool)
    finally:
        await pool.close()
    return registry


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_drawdown_is_the_share_of_the_peak_lost() -> None:
    assert drawdown(Decimal(9000), Decimal(12000)) == Decimal("0.25")
    assert drawdown(Decimal(13000), Decimal(12000)) == 0  # above the peak: none
    assert drawdown(Decimal(5), None) == 0 and drawdown(None, Decimal(5)) == 0


def test_the_gauges_tell_the_stored_trading_state(migrated: str) -> None:
    asyncio.run(execute(migrated, STATE))
    registry = asyncio.run(refreshed(migrated))
    paper = {"environment": "paper"}
    assert value(registry, "mastertrade_equity_usdt", **paper) == 10000.75
    assert value(registry, "mastertrade_cash_usdt", **paper) == 6000.5
    assert value(registry, "mastertrade_positions_value_usdt", **paper) == 4000.25
    assert value(registry, "mastertrade_equity_peak_usdt", **paper) == 12000
    assert value(registry, "mastertrade_drawdown_ratio", **paper) == pytest.approx(
        (12000 - 10000.75) / 12000
    )
    assert value(registry, "mastertrade_drawdown_limit_ratio", **paper) == 0.15
    assert value(registry, "mastertrade_circuit_breaker_open", **paper) == 1
    assert value(registry, "mastertrade_kill_switch_on", **paper) == 0
    # a zero position is not held
    assert value(registry, "mastertrade_open_positions", **paper) == 1
    assert value(registry, "mastertrade_position_quantity", **paper, symbol="BTCUSDT") == 0.05
    assert value(registry, "mastertrade_position_cost_usdt", **paper, symbol="BTCUSDT") == 2000
    assert value(registry, "mastertrade_position_quantity", **paper, symbol="ETHUSDT") is None
    # the live order and its fill are not the paper account's
    assert value(registry, "mastertrade_orders", **paper, status="filled") == 1
    assert value(registry, "mastertrade_orders", **paper, status="rejected") == 1
    assert value(registry, "mastertrade_orders", **paper, status="new") == 0
    assert value(registry, "mastertrade_fills", **paper, side="buy") == 2
    assert value(registry, "mastertrade_fills", **paper, side="sell") == 0
    assert value(registry, "mastertrade_fill_notional_usdt", **paper, side="buy") == 2000
    assert value(registry, "mastertrade_risk_decisions", **paper, outcome="approved") == 1
    assert value(registry, "mastertrade_risk_decisions", **paper, outcome="resized") == 0
    assert value(registry, "mastertrade_strategies", status="active") == 2
    assert value(registry, "mastertrade_strategies", status="retired") == 1
    # no backup recorded yet
    assert value(registry, "mastertrade_backup_last_success_timestamp_seconds") == 0
    assert value(registry, "mastertrade_backup_last_run_failed") == 0


# The gauges' truth: the whole tables counted, as the gauges did before the totals
TRUTH = """
SELECT 'orders' AS metric, status AS label, count(*) AS n, 0 AS notional FROM orders
WHERE environment = 'paper' GROUP BY status
UNION ALL
SELECT 'fills', o.side, count(*), sum(f.price * f.quantity) FROM fills f
JOIN orders o USING (client_order_id) WHERE o.environment = 'paper' GROUP BY o.side
UNION ALL
SELECT 'decisions', outcome, count(*), 0 FROM risk_decisions
WHERE environment = 'paper' GROUP BY outcome
"""
CHANGES = [  # each a statement of its own, as the services and an operator would run them
    "UPDATE orders SET status = 'filled' WHERE client_order_id = 'b'",
    "INSERT INTO orders (client_order_id, symbol, side, type, quantity, status, environment) "
    "SELECT 'n' || i, 'BTCUSDT', CASE WHEN i % 3 = 0 THEN 'sell' ELSE 'buy' END, 'market', 1, "
    "'new', 'paper' FROM generate_series(1, 40) i",
    "UPDATE orders SET status = 'filled', updated_at = now() WHERE client_order_id LIKE 'n%' "
    "AND substr(client_order_id, 2)::int % 2 = 0",
    "UPDATE orders SET updated_at = now() WHERE environment = 'paper'",  # no status change
    "INSERT INTO fills (client_order_id, fill_id, price, quantity) SELECT client_order_id, '1', "
    "101.5, 0.25 FROM orders WHERE status = 'filled' AND client_order_id LIKE 'n%'",
    "DELETE FROM fills WHERE client_order_id = 'n2'",
    "DELETE FROM orders WHERE client_order_id IN ('n4', 'n5')",  # n4's fill goes by cascade
    "INSERT INTO risk_decisions (signal_id, environment, symbol, side, outcome, "
    "requested_quantity, approved_quantity, price) SELECT 'r' || i, 'paper', 'BTCUSDT', 'buy', "
    "CASE WHEN i % 4 = 0 THEN 'rejected' ELSE 'resized' END, 2, 1, 100 "
    "FROM generate_series(1, 25) i",
]


Totals = dict[tuple[str, str], float | None]


async def totals_and_truth(url: str) -> tuple[Totals, Totals]:
    registry = await refreshed(url)
    connection = await asyncpg.connect(url)
    try:
        truth = await connection.fetch(TRUTH)
    finally:
        await connection.close()
    names = {"orders": ("mastertrade_orders", "status"), "fills": ("mastertrade_fills", "side"),
             "decisions": ("mastertrade_risk_decisions", "outcome")}  # fmt: skip
    gauges: Totals = {}
    expected: Totals = {}
    for row in truth:
        name, label = names[row["metric"]]
        key = (row["metric"], row["label"])
        expected[key] = float(row["n"])
        gauges[key] = value(registry, name, environment="paper", **{label: row["label"]})
        if row["metric"] == "fills":
            expected[("notional", row["label"])] = float(row["notional"])
            gauges[("notional", row["label"])] = value(
                registry, "mastertrade_fill_notional_usdt", environment="paper", side=row["label"]
            )
    return gauges, expected


def test_the_totals_follow_every_kind_of_write_and_agree_with_the_tables(migrated: str) -> None:
    """Inserts, status changes, an update that changes no status, deletions (an order's fills by
    cascade) and a truncation: after each, the gauges equal the whole tables counted."""
    asyncio.run(execute(migrated, STATE))
    for change in CHANGES:
        asyncio.run(execute(migrated, change))
        gauges, expected = asyncio.run(totals_and_truth(migrated))
        assert gauges == expected, change
    asyncio.run(execute(migrated, "TRUNCATE orders CASCADE"))
    registry = asyncio.run(refreshed(migrated))
    assert value(registry, "mastertrade_orders", environment="paper", status="filled") == 0
    assert value(registry, "mastertrade_fills", environment="paper", side="buy") == 0
    assert (
        value(registry, "mastertrade_risk_decisions", environment="paper", outcome="resized") == 19
    )


def run_backup(url: str, backups: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    database = url.rsplit("/", 1)[1]
    env = {"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": "postgres",
           "PGDATABASE": database, "BACKUP_DIR": str(backups), **extra}  # fmt: skip
    return subprocess.run(
        ["sh", str(CHART / "files" / "backup" / "backup.sh")],
        env={**clean_environ(), **env}, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


def test_backup_runs_are_recorded_and_exported(migrated: str, tmp_path: Path) -> None:
    started = datetime.now(UTC)
    done = run_backup(migrated, tmp_path, RABBITMQ_MANAGEMENT_URL="")
    assert done.returncode == 0, done.stderr
    registry = asyncio.run(refreshed(migrated))
    success = value(registry, "mastertrade_backup_last_success_timestamp_seconds")
    assert success is not None
    assert started - timedelta(seconds=1) <= datetime.fromtimestamp(success, UTC)
    assert value(registry, "mastertrade_backup_last_run_failed") == 0
    # the definitions export fails (nothing listens): the run fails after its dump
    dead = f"http://127.0.0.1:{free_port()}"
    failed = run_backup(migrated, tmp_path, RABBITMQ_MANAGEMENT_URL=dead)
    assert failed.returncode != 0
    registry = asyncio.run(refreshed(migrated))
    assert value(registry, "mastertrade_backup_last_run_failed") == 1
    assert value(registry, "mastertrade_backup_last_success_timestamp_seconds") == success


def test_a_backup_of_a_database_without_the_table_still_succeeds(tmp_path: Path) -> None:
    url = create_database("mastertrade_nometrics")
    try:
        done = run_backup(url, tmp_path, RABBITMQ_MANAGEMENT_URL="")
    finally:
        drop_database(url)
    assert done.returncode == 0, done.stderr
    assert "could not record this run in backup_runs" in done.stderr


def postable(ends_in: timedelta, now: datetime) -> dict[str, Any]:
    return {
        "labels": {"alertname": "MasterTradeQueueBacklog", "severity": "warning",
                   "queue": "risk_manager.order_requests"},
        "annotations": {"summary": "1500 messages wait in risk_manager.order_requests"},
        "startsAt": "2026-01-01T00:00:00.123456789Z",
        "endsAt": (now + ends_in).isoformat(),
        "generatorURL": "http://prometheus:9090/graph",
    }  # fmt: skip


def test_an_alert_whose_end_has_passed_is_resolved() -> None:
    now = datetime.now(UTC)
    ends = (timedelta(minutes=4), -timedelta(seconds=1))
    alerts = [PostableAlert.model_validate(postable(end, now)) for end in ends]
    firing, resolved = build_from_postable(alerts, now)
    assert firing.title == "[FIRING] MasterTradeQueueBacklog" and firing.severity == "warning"
    assert resolved.title == "[RESOLVED] MasterTradeQueueBacklog" and resolved.severity == "info"
    assert firing.message == "1500 messages wait in risk_manager.order_requests"
    assert firing.dedup_key != resolved.dedup_key


def test_firing_and_resolved_keep_their_own_keys_however_many_labels() -> None:
    """The chart's workload-down alert carries six labels: spelled out, its key was cut at 200
    characters before the status, so the resolution was taken for a repeat and suppressed."""
    now = datetime.now(UTC)
    labels = {"alertname": "MasterTradeWorkloadDown", "severity": "critical", "tier": "core",
              "instance": "10.244.1.17:8080", "job": "mastertrade-pods", "namespace": "trading",
              "pod": "mastertrade-risk-manager-7d9f8b6c5d-x2x4q"}  # fmt: skip
    alerts = [
        PostableAlert.model_validate(postable(end, now) | {"labels": labels})
        for end in (timedelta(minutes=4), -timedelta(seconds=1))
    ]
    again = PostableAlert.model_validate(postable(timedelta(minutes=5), now) | {"labels": labels})
    firing, resolved = build_from_postable(alerts, now)
    [repeat] = build_from_postable([again], now)
    assert firing.dedup_key != resolved.dedup_key
    assert repeat.dedup_key == firing.dedup_key
    assert firing.dedup_key is not None and len(firing.dedup_key) <= 200


async def test_prometheus_alerts_are_sent_once_per_firing_and_once_resolved(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    async with alert_system(trading_env, tmp_path) as (client, fake, _):
        first = await client.post("/api/v2/alerts", json=[postable(timedelta(minutes=4), now)])
        # Prometheus re-sends a firing alert every minute: the same alert, not a new one
        again = await client.post("/api/v2/alerts", json=[postable(timedelta(minutes=5), now)])
        resolved = await client.post("/api/v2/alerts", json=[postable(-timedelta(seconds=1), now)])
        bad = await client.post("/api/v2/alerts", json=[{"annotations": {}}])
        naive = await client.post(
            "/api/v2/alerts",
            json=[postable(timedelta(minutes=4), now) | {"endsAt": "2026-01-01T00:00:00"}],
        )
        flood = await client.post("/api/v2/alerts", json=[postable(timedelta(minutes=4), now)]
                                  * 257)  # fmt: skip
        await settled(client, 2)
    assert first.status_code == 200 and first.json()["alerts"][0] is not None
    assert again.json() == {"alerts": [None]}
    assert resolved.json()["alerts"][0] is not None
    assert bad.status_code == 422 and "labels" in bad.text
    assert naive.status_code == 422 and "timezone" in naive.text  # not a 500
    assert flood.status_code == 422 and "at most 256" in flood.text
    texts = [message["text"] for message in fake.received["slack"]]
    assert texts == [
        "[WARNING] [FIRING] MasterTradeQueueBacklog\n"
        "1500 messages wait in risk_manager.order_requests",
        "[INFO] [RESOLVED] MasterTradeQueueBacklog\n"
        "1500 messages wait in risk_manager.order_requests",
    ]


async def test_a_consumer_reports_the_ready_messages_of_its_queue() -> None:
    vhost = create_vhost("mastertrade_backlog")
    try:
        connection = await aio_pika.connect(vhost)
        async with connection:
            channel = await connection.channel()
            queue = Queue("mastertrade_test.backlog", (), dead_letter=False)
            handled: list[dict[str, Any]] = []

            async def handle(payload: dict[str, Any]) -> None:
                handled.append(payload)

            consumer = Consumer(queue, handle)
            assert await consumer.backlog() is None  # not started: nothing to ask
            await consumer.start(channel)
            await consumer.stop(timeout=5)  # no longer taking messages: they wait
            for number in range(5):
                message = aio_pika.Message(json.dumps({"n": number}).encode())
                await channel.default_exchange.publish(message, routing_key=queue.name)
            assert await consumer.backlog() == 5
            assert handled == []
            await channel.close()
            assert await consumer.backlog() is None  # the broker cannot be asked
    finally:
        delete_vhost(vhost)

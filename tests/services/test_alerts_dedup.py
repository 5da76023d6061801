"""Dedup keys that name one event are idempotency keys, on real PostgreSQL and RabbitMQ: the
same event delivered again long after its first copy (the broker redelivering what a dead
replica never acknowledged, an outbox publishing again after an outage) is never sent twice,
whatever the delay; keys that name a condition that repeats (a risk rule's rejections) keep
their window, and are heard again after a longer gap. Which key is which is checked against
the keys the producers make."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from mastertrade.alerts.adapters.store import REPEATED_EVER
from mastertrade.alerts.domain.dedup import dedup_lookback
from mastertrade.alerts.domain.events import (
    AlertmanagerAlert,
    AlertmanagerWebhook,
    build_from_alertmanager,
    build_from_message,
)
from mastertrade.alerts.domain.report import DailyFigures, build_daily_report
from mastertrade.core.bus import publish_json
from mastertrade.risk.adapters.store import breaker_alert
from mastertrade.risk.domain.limits import RiskLimits
from mastertrade.strategy.domain.changes import (
    StrategyRef,
    derive_hand_activation,
    derive_run_change,
)
from mastertrade_model.topology import ALERTS, ORDERS
from tests.services.helpers import execute_sql
from tests.services.test_alerts import alert_system, filled, settled
from tests.services.trading import recording

pytestmark = pytest.mark.infra

HOUR = 3600  # longer than the 300 s window: a node lost, its pod evicted ~5 min later
RECEIVERS = ["discord", "slack", "sms", "telegram", "webhook"]  # and the mailbox


async def age_alerts(url: str, seconds: int) -> None:
    """Every alert stored so far was stored `seconds` earlier."""
    await execute_sql(
        url, "UPDATE alerts SET created_at = created_at - make_interval(secs => $1)", seconds
    )


KILL_SWITCH = {"kind": "kill_switch", "severity": "critical", "title": "Kill switch ON",
               "occurred_at": "2026-12-06T10:00:00+00:00"}  # fmt: skip
REJECTED = filled("mt-refused") | {"status": "rejected", "reason": "insufficient balance"}
LIMITS = RiskLimits()
BREAKER = breaker_alert(Decimal("0.16"), LIMITS, "paper", 41).to_json()


@pytest.mark.parametrize(
    ("exchange", "routing_key", "event"),
    [
        (ORDERS.name, "order.filled", filled("mt-late")),  # filled:<client order id>
        (ORDERS.name, "order.rejected", REJECTED),  # rejected:<client order id>
        (ALERTS.name, "alert.kill_switch", KILL_SWITCH),  # no key: event:<sha256 of it>
        (ALERTS.name, "alert.circuit_breaker", BREAKER),  # the trip's own key
    ],
    ids=["fill", "executor-rejection", "keyless-event", "breaker-trip"],
)
async def test_an_event_delivered_again_after_the_dedup_window_is_not_sent_again(
    trading_env: dict[str, str], tmp_path: Path, exchange: str, routing_key: str,
    event: dict[str, Any],
) -> None:  # fmt: skip
    async with (
        recording(trading_env["RABBITMQ_URL"]) as (_, channel),
        alert_system(trading_env, tmp_path) as (client, fake, mailbox),
    ):
        await publish_json(channel, exchange, routing_key, event)
        await settled(client, 1)
        await age_alerts(trading_env["DATABASE_URL"], HOUR)
        await publish_json(channel, exchange, routing_key, event)  # redelivered an hour on
        history = await settled(client, 2)
    first, again = reversed(history)
    assert (first["status"], again["status"]) == ("sent", "suppressed")
    assert {name: len(fake.received[name]) for name in RECEIVERS} == dict.fromkeys(RECEIVERS, 1)
    assert len(mailbox.messages) == 1


async def test_a_risk_rules_rejections_are_heard_again_after_a_gap_longer_than_the_window(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    """The risk manager keys its rejections by symbol and rule: repeats within the window are
    one alert, a rejection after a longer quiet spell is news again."""
    rejection = {"kind": "order_rejected", "severity": "warning", "source": "risk_manager",
                 "title": "Risk rejected buy 1 BTCUSDT", "message": "position size over 20%",
                 "dedup_key": "risk-rejected:BTCUSDT:max_position_size"}  # fmt: skip
    async with (
        recording(trading_env["RABBITMQ_URL"]) as (_, channel),
        alert_system(trading_env, tmp_path) as (client, fake, _),
    ):
        for number in (1, 2):
            await publish_json(channel, ALERTS.name, "alert.order_rejected", rejection)
            await settled(client, number)
        await age_alerts(trading_env["DATABASE_URL"], 301)
        await publish_json(channel, ALERTS.name, "alert.order_rejected", rejection)
        history = await settled(client, 3)
    assert [alert["status"] for alert in reversed(history)] == ["sent", "suppressed", "sent"]
    assert len(fake.received["telegram"]) == 2


async def test_a_rejection_redelivered_after_the_window_is_not_heard_again(
    trading_env: dict[str, str], tmp_path: Path
) -> None:
    """A rule's rejection keys a condition (news again after the window), but the same message
    redelivered an hour on (a replica died before acknowledging it and the broker handed it
    over after a long outage) is that rejection again, not news; a new rejection of the rule
    an hour on, with its own time, is."""
    rejection = {"kind": "order_rejected", "severity": "warning", "source": "risk_manager",
                 "title": "Risk rejected buy 1 BTCUSDT", "message": "position size over 20%",
                 "dedup_key": "risk-rejected:BTCUSDT:max_position_size",
                 "occurred_at": "2026-12-07T10:00:00+00:00"}  # fmt: skip
    later = rejection | {"occurred_at": "2026-12-07T11:00:00+00:00"}
    async with (
        recording(trading_env["RABBITMQ_URL"]) as (_, channel),
        alert_system(trading_env, tmp_path) as (client, fake, _),
    ):
        for number, event in enumerate((rejection, rejection, later), start=1):
            await publish_json(channel, ALERTS.name, "alert.order_rejected", event)
            await settled(client, number)
            await age_alerts(trading_env["DATABASE_URL"], HOUR)
        history = await settled(client, 3)
    assert [alert["status"] for alert in reversed(history)] == ["sent", "suppressed", "sent"]
    assert len(fake.received["telegram"]) == 2


def test_keys_naming_one_event_have_no_time_limit_and_repeating_ones_keep_the_window() -> None:
    """The keys as their producers make them."""
    firing = build_from_alertmanager(AlertmanagerWebhook(status="firing", alerts=[
        AlertmanagerAlert(status="firing", labels={"alertname": "ServiceDown"},
                          startsAt="2026-01-01T00:00:00Z"),
    ]))[0]  # fmt: skip
    ref = StrategyRef(7, "BTCUSDT", "momentum")
    activated = datetime(2026, 12, 6, tzinfo=UTC)
    figures = DailyFigures(
        environment="paper", fills=0, traded_value=Decimal(0), fees=(), orders_rejected=0,
        signals_rejected=0, equity=None, equity_peak=None, breaker_open=False,
        breaker_reason=None, kill_switch=False, positions=(),
    )  # fmt: skip
    one_event = [
        build_from_message(filled("mt-1")).dedup_key,
        build_from_message(REJECTED).dedup_key,
        build_from_message(KILL_SWITCH).dedup_key,
        build_from_message(BREAKER).dedup_key,
        derive_run_change(
            3, "nightly", "schedule", activated=[ref], retired=[], active=1
        ).dedup_key,
        derive_hand_activation(ref, activated, "admin", 1).dedup_key,
    ]
    repeating = [
        firing.dedup_key,
        "risk-rejected:BTCUSDT:max_position_size",  # risk/adapters/store.py, by rule
        "position-drift:live:BTCUSDT:0.5:0.4",  # execution/adapters/live_books.py, each poll
        # its claim is its dedup: stored with a window of 0, it must stay 0
        build_daily_report(figures, activated).dedup_key,
    ]
    assert all(one_event) and all(repeating)  # every one names a key
    assert [dedup_lookback(str(key), 300) for key in one_event] == [None] * len(one_event)
    assert [dedup_lookback(str(key), 300) for key in repeating] == [300] * len(repeating)
    assert dedup_lookback(str(repeating[-1]), 0) == 0


async def test_the_lookup_with_no_time_limit_is_served_by_the_dedup_index(
    trading_env: dict[str, str],
) -> None:
    connection = await asyncpg.connect(trading_env["DATABASE_URL"])
    try:
        await connection.execute("SET enable_seqscan = off")  # a small table: no shortcut
        plan = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {REPEATED_EVER}", "filled:mt-1")
    finally:
        await connection.close()
    assert '"Index Name": "alerts_dedup"' in plan

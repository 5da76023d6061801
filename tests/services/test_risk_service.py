"""risk_manager on real PostgreSQL and RabbitMQ: signals decided once, the breaker trips from
the equity peak and only an authenticated admin call resets it, the order rate limit holds
across replicas and restarts."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aio_pika
import asyncpg
import pytest

from mastertrade.core.bus import declare_topology, publish_json
from mastertrade.core.messages import APPROVAL_LIFETIME_SECONDS, SIGNAL_LIFETIME_SECONDS, Signal
from mastertrade.risk.adapters.batcher import DecisionBatcher
from mastertrade.risk.adapters.state import KILL, apply_breaker_reset
from mastertrade.risk.adapters.store import decide_batch, watch_breaker
from mastertrade.risk.domain import Outcome, RiskLimits
from mastertrade_model.topology import EXCHANGES, QUEUES, SIGNALS
from tests.infra import create_vhost, delete_vhost
from tests.services.helpers import running, value_of, wait_for_status
from tests.services.trading import build_app, recording, unmarked_events

pytestmark = pytest.mark.infra

TOKEN = "s3cret-admin-token"
ADMIN = {"RISK_ADMIN_API_KEY_SHA256": hashlib.sha256(TOKEN.encode()).hexdigest()}


def signal(
    signal_id: str, side: str = "buy", quantity: str = "1", price: str = "30000"
) -> dict[str, str]:
    return {"signal_id": signal_id, "symbol": "BTCUSDT", "side": side, "quantity": quantity,
            "price": price}  # fmt: skip


async def set_equity(url: str, equity: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "INSERT INTO account_equity (environment, cash, positions_value, equity) "
            "VALUES ('paper', $1, 0, $1) ON CONFLICT (environment) DO UPDATE "
            "SET cash = $1, equity = $1", Decimal(equity),
        )  # fmt: skip
    finally:
        await connection.close()


async def test_a_signal_is_resized_to_the_position_limit_and_decided_once(
    trading_env: dict[str, str],
) -> None:
    await set_equity(trading_env["DATABASE_URL"], "10000")
    async with (
        recording(trading_env["RABBITMQ_URL"]) as (recorder, channel),
        running(build_app("risk_manager", trading_env)) as client,
    ):
        await wait_for_status(client, "/health", 200)
        made = datetime.now(UTC) - timedelta(seconds=3)
        for _ in range(2):  # the second is a redelivery of the same signal
            await publish_json(channel, SIGNALS.name, "signal.BTCUSDT",
                               signal("sig-1") | {"created_at": made.isoformat()})  # fmt: skip
        approved = await recorder.wait_for("order.approved")
        await recorder.wait_for("risk.decision")
        await asyncio.sleep(1.5)  # time for a wrongly doubled order to show up
        decisions = (await client.get("/api/v1/decisions")).json()
        stored_made = await value_of(
            trading_env["DATABASE_URL"], "SELECT array_agg(signal_created_at) FROM risk_decisions"
        )
    assert stored_made == [made]  # a strategy's latest signal is the one it made last
    assert len(recorder.of("order.approved")) == 1
    assert approved[0]["quantity"] == "0.06666666"  # 20 % of 10000 at 30000, floored
    assert approved[0]["client_order_id"].startswith("mt-")
    assert [d["outcome"] for d in decisions] == ["resized"]
    assert "20.00% of equity" in decisions[0]["reasons"][0]


async def test_an_approval_reaches_the_executors_queue_on_a_broker_that_lost_its_state(
    trading_env: dict[str, str],
) -> None:
    """A broker with no queues (its volume lost; `mastertrade migrate` not run since) and no
    executor started yet: the approvals the risk manager publishes wait in the executor's
    queue, since the risk manager declares the queues its messages go to (the broker drops,
    and confirms, a message no queue is bound for)."""
    vhost = create_vhost("mastertrade_lost")
    try:
        env = trading_env | {"RABBITMQ_URL": vhost}
        await set_equity(trading_env["DATABASE_URL"], "10000")
        async with running(build_app("risk_manager", env)) as client:
            await wait_for_status(client, "/health", 200)
            connection = await aio_pika.connect(vhost)
            async with connection:
                channel = await connection.channel()
                await publish_json(channel, SIGNALS.name, "signal.BTCUSDT", signal("lost-1"))
                queue = await channel.declare_queue("order_executor.approved_orders",
                                                    passive=True)  # fmt: skip
                message, deadline = None, time.monotonic() + 10
                while message is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                    message = await queue.get(fail=False)
                assert message is not None, "the approved order was dropped by the broker"
                assert json.loads(message.body)["signal_id"] == "lost-1"
    finally:
        delete_vhost(vhost)


async def test_a_stopping_risk_manager_sends_and_marks_what_its_last_batches_decided(
    trading_env: dict[str, str],
) -> None:
    """Stopped right after its last decisions, it leaves nothing to the outbox loops (which
    would send it again once the lease is over): every event sent once, and marked."""
    url = trading_env["DATABASE_URL"]
    await set_equity(url, "10000")
    ids = [f"stop-{n}" for n in range(10)]
    async with recording(trading_env["RABBITMQ_URL"]) as (recorder, channel):
        async with running(build_app("risk_manager", trading_env)) as client:
            await wait_for_status(client, "/health", 200)
            for signal_id in ids:
                await publish_json(channel, SIGNALS.name, "signal.BTCUSDT",
                                   signal(signal_id, quantity="0.001"))  # fmt: skip
            await recorder.wait_for("risk.decision", len(ids))
        left = await unmarked_events(url)
        await asyncio.sleep(0.5)  # time for a wrongly doubled event to show up
    assert left == 0
    assert sorted(d["signal_id"] for d in recorder.of("risk.decision")) == sorted(ids)


async def test_the_breaker_trips_from_the_peak_and_only_the_admin_resets_it(
    trading_env: dict[str, str],
) -> None:
    url = trading_env["DATABASE_URL"]
    env = {**trading_env, **ADMIN}
    async with (
        recording(env["RABBITMQ_URL"]) as (recorder, channel),
        running(build_app("risk_manager", env)) as client,
    ):
        await wait_for_status(client, "/health", 200)
        for step, equity in enumerate(["10000", "12000", "10100"]):  # peak 12000, then -15.8 %
            await set_equity(url, equity)
            await publish_json(channel, SIGNALS.name, "signal.BTCUSDT",
                               signal(f"s{step}", quantity="0.01"))  # fmt: skip
            await recorder.wait_for("risk.decision", step + 1)
        tripped = await recorder.wait_for("alert.circuit_breaker")
        state = (await client.get("/api/v1/state")).json()
        assert state["breaker_open"] is True and Decimal(state["equity_peak"]) == 12000
        await set_equity(url, "11000")  # recovering does not close the breaker
        await publish_json(channel, SIGNALS.name, "signal.BTCUSDT", signal("s3", quantity="0.01"))
        decisions = await recorder.wait_for("risk.decision", 4)
        reset = "/api/v1/admin/circuit-breaker/reset"
        assert (await client.post(reset)).status_code == 401
        wrong = await client.post(reset, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403
        done = await client.post(reset, headers={"Authorization": f"Bearer {TOKEN}"})
        await publish_json(channel, SIGNALS.name, "signal.BTCUSDT", signal("s4", quantity="0.01"))
        after = await recorder.wait_for("risk.decision", 5)
        await recorder.wait_for("alert.circuit_breaker", 2)  # the trip's, the reset's
        # 9.1 % down from 11000, the breaker closed: a second reset (a double click, a retry)
        # must not lower the peak, or each call would move the drawdown limit down
        await set_equity(url, "10000")
        again = await client.post(reset, headers={"Authorization": f"Bearer {TOKEN}"})
        await asyncio.sleep(0.5)  # time for a wrong second reset alert to go out
    assert [d["outcome"] for d in decisions] == ["approved", "approved", "rejected", "rejected"]
    assert "circuit breaker" in decisions[3]["reasons"][0]
    assert tripped[0]["severity"] == "critical"
    assert done.status_code == 200, done.text
    assert done.json()["breaker_open"] is False and Decimal(done.json()["equity_peak"]) == 11000
    assert after[-1]["outcome"] == "approved"
    assert again.status_code == 200 and Decimal(again.json()["equity_peak"]) == 11000
    assert [a["title"] for a in recorder.of("alert.circuit_breaker")][1:] == [
        "Circuit breaker reset by an admin"
    ]


async def test_the_peak_follows_the_equity_between_signals_and_the_breaker_trips_on_its_own(
    trading_env: dict[str, str],
) -> None:
    """The executor's equity rises to 12000 and falls to 10100 (-15.8 %) while no signal comes:
    the peak is 12000 all the same, the breaker trips and its alert goes out with no signal to
    decide, and the next buy is rejected."""
    url = trading_env["DATABASE_URL"]
    async with (
        recording(trading_env["RABBITMQ_URL"]) as (recorder, channel),
        running(build_app("risk_manager", trading_env)) as client,
    ):
        await wait_for_status(client, "/health", 200)
        for equity in ["10000", "12000", "10100"]:
            await set_equity(url, equity)
        tripped = await recorder.wait_for("alert.circuit_breaker")
        state = (await client.get("/api/v1/state")).json()
        await publish_json(channel, SIGNALS.name, "signal.BTCUSDT", signal("b", quantity="0.01"))
        decision = (await recorder.wait_for("risk.decision"))[0]
    assert Decimal(state["equity_peak"]) == 12000 and state["breaker_open"] is True
    assert "drawdown 15.83%" in tripped[0]["message"] and "(paper)" in tripped[0]["title"]
    assert decision["outcome"] == "rejected" and "circuit breaker" in decision["reasons"][0]


async def test_a_rise_and_fall_between_two_decisions_counts_in_the_drawdown(
    trading_env: dict[str, str],
) -> None:
    """Without any watch: the batch deciding the second signal sees the peak the equity reached
    after the first one (12000), not the equity it saw at the first (10000)."""
    url = trading_env["DATABASE_URL"]
    connection = await asyncpg.connect(url)
    try:
        await set_equity(url, "10000")
        first, _ = await decide_batch(connection, [small_buy("rise-1")], RiskLimits(), "paper")
        await set_equity(url, "12000")
        await set_equity(url, "10100")
        second, _ = await decide_batch(connection, [small_buy("rise-2")], RiskLimits(), "paper")
        state = await connection.fetch("SELECT equity_peak, breaker_open FROM risk_state")
    finally:
        await connection.close()
    assert first[0].outcome is Outcome.APPROVED
    assert second[0].outcome is Outcome.REJECTED and "circuit breaker" in second[0].reasons[0]
    assert [tuple(row) for row in state] == [(12000, True)]


async def test_each_trip_of_the_breaker_has_an_alert_of_its_own(
    trading_env: dict[str, str],
) -> None:
    """A trip soon after a reset is a new trip: its alert must not be deduplicated against the
    one before (the alert system drops repeats of a dedup key for minutes)."""
    url = trading_env["DATABASE_URL"]
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    alerts = []
    try:
        for peak, fallen in [("10000", "8000"), ("9000", "7000")]:
            await set_equity(url, peak)
            await set_equity(url, fallen)
            async with pool.acquire() as connection:
                alerts += await watch_breaker(connection, RiskLimits(), "paper")
                again = await watch_breaker(connection, RiskLimits(), "paper")
            assert again == []  # open already: nothing more to trip
            await apply_breaker_reset(pool, "paper", "test")
    finally:
        await pool.close()
    keys = [event[2]["dedup_key"] for _, event in alerts]
    assert [event[1] for _, event in alerts] == ["alert.circuit_breaker"] * 2
    assert len(set(keys)) == 2 and all("paper" in key for key in keys)


async def test_sells_approved_and_not_yet_filled_count_as_sold(
    trading_env: dict[str, str],
) -> None:
    """One BTC held: a sell of 0.6 and a sell of 1 in one batch get 0.6 and the 0.4 left, and
    a sell in a later batch, before those orders fill, gets nothing."""
    url = trading_env["DATABASE_URL"]
    await set_equity(url, "100000")
    connection = await asyncpg.connect(url)
    try:
        await hold_one_btc(connection)
        both = [sell("sell-1", "0.6"), sell("sell-2", "1")]
        batch, _ = await decide_batch(connection, both, RiskLimits(), "paper")
        later, _ = await decide_batch(connection, [sell("sell-3", "0.1")], RiskLimits(), "paper")
    finally:
        await connection.close()
    assert [(d.outcome, d.quantity) for d in batch] == [
        (Outcome.APPROVED, Decimal("0.6")), (Outcome.RESIZED, Decimal("0.4"))
    ]  # fmt: skip
    assert later[0].outcome is Outcome.REJECTED and "left to sell" in later[0].reasons[0]


async def test_a_sell_whose_order_never_came_stops_holding_the_coins_back(
    trading_env: dict[str, str],
) -> None:
    """A sell approved ten minutes ago whose order the executor never recorded (its message
    dead-lettered) no longer blocks selling the position; a buy in the same state still counts
    against the symbol's exposure."""
    url = trading_env["DATABASE_URL"]
    await set_equity(url, "10000")
    connection = await asyncpg.connect(url)
    try:
        await hold_one_btc(connection)
        lost = [sell("lost-sell", "1"), Signal.model_validate(signal("lost-buy", price="100",
                                                                     quantity="10"))]  # fmt: skip
        first, _ = await decide_batch(connection, lost, RiskLimits(), "paper")
        await connection.execute("UPDATE risk_decisions SET decided_at = now() - interval '10m'")
        again = [sell("exit", "1"), Signal.model_validate(signal("more", price="100",
                                                                 quantity="100"))]  # fmt: skip
        later, _ = await decide_batch(connection, again, RiskLimits(), "paper")
    finally:
        await connection.close()
    assert [d.outcome for d in first] == [Outcome.APPROVED, Outcome.APPROVED]
    assert (later[0].outcome, later[0].quantity) == (Outcome.APPROVED, Decimal(1))
    # the lost buy's 1000 still counts: 1 BTC at 100 and it leave 900 under 20 % of 10000
    assert (later[1].outcome, later[1].quantity) == (Outcome.RESIZED, Decimal(9))


async def test_a_buy_whose_order_never_came_stops_counting_once_the_executor_would_refuse_it(
    trading_env: dict[str, str],
) -> None:
    """A buy approved and never recorded (its message dead-lettered) counts against the symbol's
    exposure while the executor could still take it, and no longer once it would reject it as
    stale: past APPROVAL_LIFETIME_SECONDS, and as long again for the pods' clocks."""
    url = trading_env["DATABASE_URL"]
    await set_equity(url, "10000")
    grace = 2 * APPROVAL_LIFETIME_SECONDS
    connection = await asyncpg.connect(url)

    async def buy_after(signal_id: str, age: float) -> tuple[Outcome, Decimal]:
        await connection.execute(
            "UPDATE risk_decisions SET decided_at = now() - make_interval(secs => $1)", age
        )
        more = Signal.model_validate(signal(signal_id, price="100", quantity="100"))
        [decision], _ = await decide_batch(connection, [more], RiskLimits(), "paper")
        return decision.outcome, decision.quantity

    try:
        await hold_one_btc(connection)
        lost = Signal.model_validate(signal("lost-buy", price="100", quantity="10"))
        first, _ = await decide_batch(connection, [lost], RiskLimits(), "paper")
        waited = await buy_after("while-it-may-come", grace - 60)
        given_up = await buy_after("once-refused", grace + 60)
        still_pending = await connection.fetchval(
            "SELECT array_agg(signal_id ORDER BY signal_id) FROM risk_decisions WHERE pending"
        )
    finally:
        await connection.close()
    assert (first[0].outcome, first[0].quantity) == (Outcome.APPROVED, Decimal(10))
    # 1 BTC at 100 and the lost buy's 1000 leave 900 under 20 % of 10000
    assert waited == (Outcome.RESIZED, Decimal(9))
    # both approvals given up: only the BTC held counts, 1900 left under 20 % of 10000
    assert given_up == (Outcome.RESIZED, Decimal(19))
    assert still_pending == ["once-refused"]  # those given up are no longer looked at


async def test_dust_left_behind_by_sells_is_not_an_open_position(
    trading_env: dict[str, str],
) -> None:
    """Ten symbols hold what a lot size leaves behind a sell (0.00000765 BTC, worth cents: no
    order can sell it): a buy of an eleventh symbol is not refused for "10 positions open".
    Ten real positions (each 0.1 % of equity or more) do refuse it, and a buy of one of them
    (adding to it) is not refused for the count. Crumbs whose price rose a hundredfold since
    (marked at 23 USDT each) are positions again."""
    url = trading_env["DATABASE_URL"]
    await set_equity(url, "10000")

    def buy(signal_id: str, symbol: str) -> Signal:
        return Signal.model_validate(signal(signal_id, price="100", quantity="1") |
                                     {"symbol": symbol})  # fmt: skip

    async def hold(quantity: str, price: str, mark: str | None = None) -> None:
        await connection.execute("DELETE FROM positions")
        await connection.executemany(
            "INSERT INTO positions (environment, symbol, quantity, average_price, mark) "
            "VALUES ('paper', $1, $2, $3, $4)",
            [(f"C{index}USDT", Decimal(quantity), Decimal(price), mark and Decimal(mark))
             for index in range(10)],
        )  # fmt: skip

    connection = await asyncpg.connect(url)
    try:
        await hold("0.00000765", "30000")  # 0.23 USDT each, under 0.1 % of 10000 (10 USDT)
        [with_dust], _ = await decide_batch(connection, [buy("b-1", "NEWUSDT")], RiskLimits(),
                                            "paper")  # fmt: skip
        await hold("0.0004", "30000")  # 12 USDT each: positions
        held, _ = await decide_batch(connection, [buy("b-2", "ANOTHERUSDT"), buy("b-3", "C3USDT")],
                                     RiskLimits(), "paper")  # fmt: skip
        await hold("0.00000765", "30000", mark="3000000")  # bought for cents, now 23 USDT each
        [grown], _ = await decide_batch(connection, [buy("b-4", "THIRDUSDT")], RiskLimits(),
                                        "paper")  # fmt: skip
    finally:
        await connection.close()
    assert with_dust.outcome is Outcome.APPROVED
    assert held[0].outcome is Outcome.REJECTED
    # the ten, and NEWUSDT being bought
    assert held[0].reasons[0] == "11 positions open, the maximum is 10"
    assert held[1].outcome is Outcome.APPROVED
    assert grown.outcome is Outcome.REJECTED  # worth is judged at the mark, not at the cost


async def test_an_account_at_zero_is_decided_and_reset_without_error(
    trading_env: dict[str, str],
) -> None:
    """Equity 0 with no peak yet: the buy is rejected with its reason (not dead-lettered by a
    peak the state refuses), and an admin reset works."""
    url = trading_env["DATABASE_URL"]
    await set_equity(url, "0")
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as connection:
            decided, _ = await decide_batch(connection, [small_buy("zero")], RiskLimits(), "paper")
        state = await apply_breaker_reset(pool, "paper", "test")
    finally:
        await pool.close()
    assert decided[0].outcome is Outcome.REJECTED and "not positive" in decided[0].reasons[0]
    assert state["equity_peak"] is None and state["breaker_open"] is False


async def test_a_valuation_older_than_the_limit_stops_buys_not_sells(
    trading_env: dict[str, str],
) -> None:
    """The executor stopped revaluing two minutes ago: the age is read from the database's own
    clock, buys are refused with a reason that says what to look at, sells still pass."""
    url = trading_env["DATABASE_URL"]
    await set_equity(url, "1000000")
    connection = await asyncpg.connect(url)
    try:
        await hold_one_btc(connection)
        fresh, _ = await decide_batch(connection, [small_buy("fresh")], RiskLimits(), "paper")
        await connection.execute(
            "UPDATE account_equity SET updated_at = now() - interval '2 minutes'"
        )
        old = [small_buy("stale"), sell("stale-sell", "0.5")]
        stale, _ = await decide_batch(connection, old, RiskLimits(), "paper")
    finally:
        await connection.close()
    assert fresh[0].outcome is Outcome.APPROVED
    assert stale[0].outcome is Outcome.REJECTED and "executor" in stale[0].reasons[0]
    assert stale[1].outcome is Outcome.APPROVED


async def test_what_is_held_counts_at_its_market_mark_not_at_a_lower_limit(
    trading_env: dict[str, str],
) -> None:
    """0.6 BTC held, marked at 30000 by the executor's last valuation (18 % of an equity of
    100000): a limit buy at 10000 may add 2000 (0.2 BTC), which brings the position to 20 % at
    the market; counted at its limit, the 0.6 held would have left room for 1.4 BTC (32 %)."""
    url = trading_env["DATABASE_URL"]
    await set_equity(url, "100000")
    limit_buy = Signal.model_validate(
        signal("deep-limit", quantity="5", price="10000") | {"order_type": "limit"}
    )
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "INSERT INTO positions (environment, symbol, quantity, average_price, mark) "
            "VALUES ('paper', 'BTCUSDT', 0.6, 29000, 30000)"
        )
        [decided], _ = await decide_batch(connection, [limit_buy], RiskLimits(), "paper")
    finally:
        await connection.close()
    assert decided.outcome is Outcome.RESIZED
    assert decided.quantity == Decimal("0.2")


async def test_a_signal_older_than_its_lifetime_is_rejected_buy_or_sell_and_stays_so(
    trading_env: dict[str, str],
) -> None:
    """The risk manager was away for longer than a signal's lifetime: the buy and the sell its
    backlog holds are rejected, saying how old they are; its redelivery gets the same decision;
    a signal made now passes."""
    url = trading_env["DATABASE_URL"]
    await set_equity(url, "1000000")
    made = (datetime.now(UTC) - timedelta(seconds=SIGNAL_LIFETIME_SECONDS + 60)).isoformat()
    old = [
        Signal.model_validate(signal("old-buy", quantity="0.01") | {"created_at": made}),
        Signal.model_validate(signal("old-sell", "sell", "0.5") | {"created_at": made}),
    ]
    connection = await asyncpg.connect(url)
    try:
        await hold_one_btc(connection)
        stale, _ = await decide_batch(connection, old, RiskLimits(), "paper")
        again, events = await decide_batch(connection, old, RiskLimits(), "paper")
        fresh, _ = await decide_batch(connection, [small_buy("new-buy")], RiskLimits(), "paper")
        stored = await connection.fetch(
            "SELECT signal_id, outcome, reasons->>0 AS reason FROM risk_decisions "
            "WHERE signal_id LIKE 'old-%' ORDER BY signal_id"
        )
    finally:
        await connection.close()
    assert [d.outcome for d in stale] == [Outcome.REJECTED, Outcome.REJECTED]
    assert [row["outcome"] for row in stored] == ["rejected", "rejected"]
    assert all(re.match(r"signal made 66\d s ago", row["reason"]) for row in stored), stored
    assert [d.outcome for d in again] == [Outcome.REJECTED, Outcome.REJECTED] and events == []
    assert fresh[0].outcome is Outcome.APPROVED


async def hold_one_btc(connection: asyncpg.Connection) -> None:
    await connection.execute(
        "INSERT INTO positions (environment, symbol, quantity, average_price) "
        "VALUES ('paper', 'BTCUSDT', 1, 30000)"
    )


def small_buy(signal_id: str) -> Signal:
    return Signal.model_validate(signal(signal_id, quantity="0.01"))


def sell(signal_id: str, quantity: str) -> Signal:
    return Signal.model_validate(signal(signal_id, side="sell", quantity=quantity))


async def test_admin_calls_are_off_without_a_configured_key(trading_env: dict[str, str]) -> None:
    async with running(build_app("risk_manager", trading_env)) as client:
        answer = await client.post(
            "/api/v1/admin/kill-switch", json={"enabled": True},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )  # fmt: skip
    assert answer.status_code == 503
    assert "RISK_ADMIN_API_KEY_SHA256" in answer.json()["detail"]


@pytest.mark.parametrize("enabled", ["yes", "false", 1, 0, None])
async def test_the_kill_switch_takes_only_true_or_false(
    trading_env: dict[str, str], enabled: object
) -> None:
    """A switch that stops trading is not guessed from "yes", 1 or "false"."""
    async with running(build_app("risk_manager", {**trading_env, **ADMIN})) as client:
        answer = await client.post("/api/v1/admin/kill-switch", json={"enabled": enabled},
                                   headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
    connection = await asyncpg.connect(trading_env["DATABASE_URL"])
    try:
        switched = await connection.fetchval("SELECT bool_or(kill_switch) FROM risk_state")
    finally:
        await connection.close()
    assert answer.status_code == 422 and "enabled" in answer.text
    assert not switched


async def test_the_kill_switch_rejects_everything(trading_env: dict[str, str]) -> None:
    await set_equity(trading_env["DATABASE_URL"], "10000")
    env = {**trading_env, **ADMIN}
    async with (
        recording(env["RABBITMQ_URL"]) as (recorder, channel),
        running(build_app("risk_manager", env)) as client,
    ):
        await wait_for_status(client, "/health", 200)
        switch = "/api/v1/admin/kill-switch"
        as_admin = {"Authorization": f"Bearer {TOKEN}"}
        on = await client.post(switch, json={"enabled": True}, headers=as_admin)
        await publish_json(channel, SIGNALS.name, "signal.BTCUSDT", signal("k1", quantity="0.01"))
        decision = (await recorder.wait_for("risk.decision"))[0]
        await recorder.wait_for("alert.kill_switch")
        await client.post(switch, json={"enabled": True}, headers=as_admin)  # on already
        off = await client.post(switch, json={"enabled": False}, headers=as_admin)
        await publish_json(channel, SIGNALS.name, "signal.BTCUSDT", signal("k2", quantity="0.01"))
        after = (await recorder.wait_for("risk.decision", 2))[1]
        await recorder.wait_for("alert.kill_switch", 2)
        await asyncio.sleep(0.5)  # time for a wrong third alert to go out
    assert on.json()["kill_switch"] is True and off.json()["kill_switch"] is False
    assert decision["outcome"] == "rejected" and "kill switch" in decision["reasons"][0]
    assert after["outcome"] == "approved"
    titles = [alert["title"] for alert in recorder.of("alert.kill_switch")]
    assert titles == ["Kill switch ON", "Kill switch off"]  # the call that changed nothing: none


@pytest.mark.parametrize("bad", ["Infinity", "NaN", "-1"])
async def test_the_check_refuses_non_finite_values(service_env: dict[str, str], bad: str) -> None:
    async with running(build_app("risk_manager", service_env)) as client:
        body = {"position_value": bad, "portfolio_value": "10000", "portfolio_peak": "10000"}
        answer = await client.post("/api/v1/check", json=body)
    assert answer.status_code == 422
    assert "position_value" in answer.text


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
async def test_a_bare_non_finite_json_number_is_refused_not_a_500(
    service_env: dict[str, str], literal: str
) -> None:
    """Python's JSON parser reads NaN and Infinity literals (1e400 is Infinity): the 422 that
    names them could not be written as JSON, and the caller got a 500."""
    body = f'{{"position_value": {literal}, "portfolio_value": 1, "portfolio_peak": 1}}'
    async with running(build_app("risk_manager", service_env)) as client:
        answer = await client.post(
            "/api/v1/check", content=body, headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "position_value"] and "not a finite number" in error["msg"]


@pytest.mark.parametrize("tiny", ["1e-999999", "1e-5000"])
async def test_the_check_refuses_an_amount_too_small_to_divide_by(
    service_env: dict[str, str], tiny: str
) -> None:
    """A portfolio of 1e-999999 made the position's share overflow Decimal's range (500), and
    one of 1e-5000 made an answer of 5,000 digits: both are refused, naming the field."""
    async with running(build_app("risk_manager", service_env)) as client:
        body = {"position_value": "1e15", "portfolio_value": tiny, "portfolio_peak": "1"}
        answer = await client.post("/api/v1/check", json=body)
    assert answer.status_code == 422
    assert "portfolio_value" in answer.text and "at least 1e-30" in answer.text


class KillSwitchBeforeTheWrite:
    """A connection on which an admin turns the kill switch on (from another connection) after
    the batch read the state and before it writes its decisions (`fetch` is its write)."""

    def __init__(self, connection: asyncpg.Connection, admin: asyncpg.Connection) -> None:
        self.connection, self.admin, self.writes = connection, admin, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)

    async def fetch(self, query: str, *arguments: Any) -> list[asyncpg.Record]:
        self.writes += 1
        if self.writes == 1:
            await self.admin.execute(KILL, "paper", True)
        return await self.connection.fetch(query, *arguments)


async def test_a_batch_decided_before_the_kill_switch_is_decided_again_after_it(
    trading_env: dict[str, str],
) -> None:
    """The kill switch turned on between a batch's read and its write: the batch stores nothing
    from the state it read, and is decided again on the new state (rejected)."""
    url = trading_env["DATABASE_URL"]
    await set_equity(url, "10000")
    connection, admin = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        await admin.execute(
            "INSERT INTO risk_state (environment) VALUES ('paper') ON CONFLICT DO NOTHING"
        )
        racing = KillSwitchBeforeTheWrite(connection, admin)
        signals = [Signal.model_validate(signal("raced", quantity="0.01"))]
        decided, written = await decide_batch(racing, signals, RiskLimits(), "paper")  # type: ignore[arg-type]
        stored = await admin.fetch("SELECT outcome, reasons::text FROM risk_decisions")
    finally:
        await connection.close()
        await admin.close()
    assert racing.writes == 2  # the first write found the state changed and wrote nothing
    assert [d.outcome for d in decided] == [Outcome.REJECTED]
    assert "kill switch" in decided[0].reasons[0]
    assert [row["outcome"] for row in stored] == ["rejected"]
    assert [event[1] for _, event in written] == ["risk.decision", "alert.order_rejected"]


async def test_two_replicas_deciding_bursts_in_batches_keep_the_exposure_limit(
    trading_env: dict[str, str],
) -> None:
    """20 signals at once on two replicas' batchers: each batch sees the decisions of the
    batches before it (also the other replica's), so exactly as many buys pass as one by one."""
    url = trading_env["DATABASE_URL"]
    await set_equity(url, "20000")
    limits = RiskLimits()  # a position at most 20 % of equity: 1000 per signal, 4000 in all
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    connection = await aio_pika.connect(trading_env["RABBITMQ_URL"])
    try:
        channel = await connection.channel(publisher_confirms=True)
        await declare_topology(channel, EXCHANGES, QUEUES)
        replicas = [DecisionBatcher(lambda: pool, lambda: channel, limits, "paper")
                    for _ in range(2)]  # fmt: skip
        signals = [Signal.model_validate(signal(f"burst-{n}", quantity="10", price="100"))
                   for n in range(20)]  # fmt: skip
        decided = await asyncio.gather(
            *(replicas[n % 2].decide(s) for n, s in enumerate(signals)),
            replicas[0].decide(signals[0]),  # a redelivery arriving in the same burst
        )
        rows = await pool.fetch("SELECT outcome, approved_quantity FROM risk_decisions")
        for replica in replicas:  # sent after each commit; the loop marks what no batch did
            await replica.sender.drain()
            await replica.sender.mark_confirmed(pool)
        unpublished = await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    finally:
        await connection.close()
        await pool.close()
    assert [r.replayed for r in decided].count(True) == 1
    assert decided[-1].client_order_id == decided[0].client_order_id
    approved = [r for r in rows if r["outcome"] != "rejected"]
    assert len(rows) == 20 and len(approved) == 4
    assert sum(r["approved_quantity"] for r in approved) * 100 == Decimal(4000)
    assert replicas[0].batches + replicas[1].batches < 20  # batched, not one by one
    assert unpublished == 0  # every event sent by its replica, none left to the outbox loop


async def test_the_order_rate_limit_holds_across_replicas_restarts_and_a_minute(
    trading_env: dict[str, str],
) -> None:
    """MAX_ORDERS_PER_MINUTE counts the approvals of every replica, is still reached after a
    restart (a new batcher: the count is in the database) and lets orders through again once
    the approvals are more than a minute old."""
    url = trading_env["DATABASE_URL"]
    await set_equity(url, "1000000")
    limits = RiskLimits(max_orders_per_minute=5)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    connection = await aio_pika.connect(trading_env["RABBITMQ_URL"])

    def batcher() -> DecisionBatcher:
        return DecisionBatcher(lambda: pool, lambda: channel, limits, "paper")

    def small(signal_id: str) -> Signal:
        return Signal.model_validate(signal(signal_id, quantity="1", price="100"))

    try:
        channel = await connection.channel(publisher_confirms=True)
        await declare_topology(channel, EXCHANGES, QUEUES)
        replicas = [batcher(), batcher()]
        burst = await asyncio.gather(
            *(replicas[n % 2].decide(small(f"rate-{n}")) for n in range(12))
        )
        restarted = batcher()
        after_restart = await restarted.decide(small("rate-after-restart"))
        # a minute and more passes: every approval so far is older than the window
        await pool.execute(
            "UPDATE risk_decisions SET decided_at = decided_at - interval '62 seconds'"
        )
        await pool.execute("UPDATE risk_order_rate SET second = second - interval '62 seconds'")
        a_minute_later = [await restarted.decide(small(f"rate-later-{n}")) for n in range(6)]
    finally:
        await connection.close()
        await pool.close()
    outcomes = [d.outcome for d in burst]
    assert outcomes.count(Outcome.APPROVED) == 5 and outcomes.count(Outcome.REJECTED) == 7
    assert all(
        any("orders in the last minute" in r for r in d.reasons)
        for d in burst if d.outcome is Outcome.REJECTED
    )  # fmt: skip
    assert after_restart.outcome is Outcome.REJECTED
    assert [d.outcome for d in a_minute_later] == [Outcome.APPROVED] * 5 + [Outcome.REJECTED]

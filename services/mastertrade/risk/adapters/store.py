"""Risk state and decisions in PostgreSQL, decided under a row lock shared by every replica.

A batch of signals is decided in one transaction: the environment's `risk_state` row is locked
FOR UPDATE (so replicas decide one at a time and see each other's decisions, peaks and breaker),
then each signal costs two statements: one reads what was already decided about it (a
redelivery), the portfolio context and settles finished orders; the pure rules decide; one writes
the decision, the new peak or breaker state and its events (`order.approved`, `risk.decision`,
alerts) into the outbox. Later signals of the batch see the earlier ones' decisions, as they
would in transactions of their own. A signal already decided returns its stored decision and
publishes nothing new.

Round trips per batch: BEGIN, the lock, 2 per signal, COMMIT (the state is read under the lock
every time, never cached: a cache would need invalidating across replicas, the lock already
gives every replica the current state for free).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from mastertrade.core.db import Connection, one
from mastertrade.core.messages import AlertEvent, ApprovedOrder, RiskDecisionEvent, Signal
from mastertrade.risk.domain import OrderRequest, Outcome, RiskContext, RiskDecision, RiskLimits
from mastertrade.risk.domain import decide as decide_rules
from mastertrade_model.topology import ALERTS, ORDERS

ENSURE_STATE = "INSERT INTO risk_state (environment) VALUES ($1) ON CONFLICT DO NOTHING"
LOCK_STATE = """
SELECT equity_peak, breaker_open, kill_switch FROM risk_state WHERE environment = $1 FOR UPDATE
"""
# One statement after the lock: the stored decision of this signal if any (a redelivery), the
# context the rules need, and the settling of approved buys whose order finished (they stop
# counting as pending exposure: the fill, if any, is in `positions` from then on). The settle
# CTE's own changes are invisible to the rest of the statement, hence `NOT IN settled`.
CONTEXT = """
WITH settled AS (
    UPDATE risk_decisions d SET pending = false FROM orders o
    WHERE d.pending AND d.environment = $1 AND o.client_order_id = d.client_order_id
      AND o.status IN ('filled', 'rejected', 'cancelled')
    RETURNING d.signal_id
), pending AS (
    SELECT symbol, approved_quantity * price AS value FROM risk_decisions
    WHERE environment = $1 AND pending AND signal_id NOT IN (SELECT signal_id FROM settled)
)
SELECT
    (SELECT equity FROM account_equity WHERE environment = $1) AS equity,
    (SELECT quantity FROM positions WHERE environment = $1 AND symbol = $2) AS position,
    (SELECT COALESCE(sum(value), 0) FROM pending WHERE symbol = $2) AS pending_value,
    (SELECT count(*) FROM (SELECT symbol FROM positions WHERE environment = $1 AND quantity > 0
                           UNION SELECT symbol FROM pending) open) AS open_positions,
    (SELECT count(*) FROM risk_decisions WHERE environment = $1 AND outcome <> 'rejected'
       AND decided_at > now() - interval '1 minute') AS recent,
    prior.outcome AS prior_outcome, prior.approved_quantity AS prior_quantity,
    prior.reasons::text AS prior_reasons, prior.client_order_id AS prior_client_order_id
FROM (SELECT 1) one LEFT JOIN risk_decisions prior ON prior.signal_id = $3
"""
# One statement writes the decision, the peak and breaker (when they change) and the events.
WRITE = """
WITH decision AS (
    INSERT INTO risk_decisions (signal_id, environment, symbol, side, outcome,
        requested_quantity, approved_quantity, price, reasons, client_order_id, pending)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $4 = 'buy' AND $5 <> 'rejected')
), state AS (
    UPDATE risk_state SET
        equity_peak = COALESCE($11::numeric, equity_peak),
        breaker_open = breaker_open OR $12::boolean,
        breaker_reason = CASE WHEN $12::boolean THEN $13::text ELSE breaker_reason END,
        breaker_tripped_at = CASE WHEN $12::boolean THEN now() ELSE breaker_tripped_at END,
        updated_at = now()
    WHERE environment = $2 AND ($11::numeric IS NOT NULL OR $12::boolean)
)
INSERT INTO outbox (exchange, routing_key, payload)
SELECT exchange, routing_key, payload::jsonb
FROM unnest($14::text[], $15::text[], $16::text[]) WITH ORDINALITY
    AS event(exchange, routing_key, payload, position)
ORDER BY position
RETURNING id
"""

Event = tuple[str, str, dict[str, Any]]


@dataclass(frozen=True)
class StoredDecision:
    outcome: Outcome
    quantity: Decimal
    reasons: list[str]
    client_order_id: str | None
    replayed: bool = False
    outbox_ids: tuple[int, ...] = ()
    events: tuple[Event, ...] = ()


def build_context(state: asyncpg.Record, row: asyncpg.Record, price: Decimal) -> RiskContext:
    """The rules' view of the portfolio from the locked state row and the context query."""
    position = row["position"] or Decimal(0)
    return RiskContext(
        equity=row["equity"],
        equity_peak=state["equity_peak"],
        position_quantity=position,
        symbol_exposure=position * price + row["pending_value"],
        open_positions=int(row["open_positions"]),
        orders_last_minute=int(row["recent"]),
        breaker_open=bool(state["breaker_open"]),
        kill_switch=bool(state["kill_switch"]),
    )


def build_events(
    signal: Signal, decision: RiskDecision, client_order_id: str | None
) -> list[Event]:
    """(exchange, routing key, payload) of every event this decision publishes."""
    events: list[Event] = []
    reasons = list(decision.reasons)
    event = RiskDecisionEvent(
        signal_id=signal.signal_id, outcome=decision.outcome.value, symbol=signal.symbol,
        side=signal.side, requested_quantity=signal.quantity,
        approved_quantity=decision.quantity, reasons=reasons, client_order_id=client_order_id,
    )  # fmt: skip
    events.append((ORDERS.name, "risk.decision", event.to_json()))
    if client_order_id is not None:
        order = ApprovedOrder(
            client_order_id=client_order_id, signal_id=signal.signal_id, symbol=signal.symbol,
            side=signal.side, order_type=signal.order_type, quantity=decision.quantity,
            limit_price=signal.price if signal.order_type == "limit" else None,
            reduce_only=signal.side == "sell",
        )  # fmt: skip
        events.append((ORDERS.name, "order.approved", order.to_json()))
    if decision.outcome is Outcome.REJECTED:
        alert = AlertEvent(
            kind="order_rejected", severity="warning", source="risk_manager",
            title=f"Risk rejected {signal.side} {signal.quantity} {signal.symbol}",
            message="; ".join(reasons), dedup_key=f"risk-rejected:{signal.symbol}:{reasons[0]}",
        )  # fmt: skip
        events.append((ALERTS.name, "alert.order_rejected", alert.to_json()))
    return events


def breaker_alert(decision: RiskDecision, limits: RiskLimits) -> AlertEvent:
    return AlertEvent(
        kind="circuit_breaker", severity="critical", source="risk_manager",
        title="Circuit breaker tripped: no new exposure",
        message=f"drawdown {decision.drawdown:.2%} from the equity peak reached "
        f"{limits.max_portfolio_drawdown_pct:.2%}; only reducing orders pass until an admin "
        "resets it (POST /api/v1/admin/circuit-breaker/reset)",
        dedup_key="circuit-breaker-tripped",
    )  # fmt: skip


def _replayed(row: asyncpg.Record) -> StoredDecision | None:
    if row["prior_outcome"] is None:
        return None
    return StoredDecision(
        Outcome(row["prior_outcome"]), row["prior_quantity"], json.loads(row["prior_reasons"]),
        row["prior_client_order_id"], replayed=True,
    )  # fmt: skip


async def lock_state(connection: Connection, environment: str) -> asyncpg.Record:
    """Lock the environment's risk state (created on the very first decision) and read it."""
    state = await connection.fetchrow(LOCK_STATE, environment)
    if state is None:
        await connection.execute(ENSURE_STATE, environment)
        state = await connection.fetchrow(LOCK_STATE, environment)
    return one(state, "risk state")


async def _decide_locked(
    connection: Connection,
    state: asyncpg.Record,
    signal: Signal,
    limits: RiskLimits,
    environment: str,
) -> tuple[StoredDecision, asyncpg.Record]:
    """Decide one signal under the held lock; returns it and the state as it now stands."""
    row = one(
        await connection.fetchrow(CONTEXT, environment, signal.symbol, signal.signal_id),
        "context",
    )
    replayed = _replayed(row)
    if replayed is not None:
        return replayed, state
    request = OrderRequest(signal.symbol, signal.side, signal.quantity, signal.price)
    decision = decide_rules(request, build_context(state, row, signal.price), limits)
    approved = decision.outcome is not Outcome.REJECTED
    client_order_id = f"mt-{uuid.uuid4().hex[:28]}" if approved else None
    events = build_events(signal, decision, client_order_id)
    alert = breaker_alert(decision, limits) if decision.trips_breaker else None
    if alert is not None:
        events.insert(0, (ALERTS.name, "alert.circuit_breaker", alert.to_json()))
    ids = await connection.fetch(
        WRITE, signal.signal_id, environment, signal.symbol, signal.side,
        decision.outcome.value, signal.quantity, decision.quantity, signal.price,
        json.dumps(list(decision.reasons)), client_order_id, decision.new_peak,
        decision.trips_breaker, alert.message if alert else None,
        [e[0] for e in events], [e[1] for e in events], [json.dumps(e[2]) for e in events],
    )  # fmt: skip
    stored = StoredDecision(
        decision.outcome, decision.quantity, list(decision.reasons), client_order_id,
        outbox_ids=tuple(r["id"] for r in ids), events=tuple(events),
    )  # fmt: skip
    return stored, _next_state(state, decision)


def _next_state(state: asyncpg.Record, decision: RiskDecision) -> Any:
    """The locked state after this decision, for the next signal of the same batch."""
    if decision.new_peak is None and not decision.trips_breaker:
        return state
    return {
        "equity_peak": decision.new_peak or state["equity_peak"],
        "breaker_open": state["breaker_open"] or decision.trips_breaker,
        "kill_switch": state["kill_switch"],
    }


async def decide_batch(
    connection: Connection, signals: Sequence[Signal], limits: RiskLimits, environment: str
) -> list[StoredDecision]:
    """Decide the signals in order, atomically (all or none), on `connection`."""
    decided: list[StoredDecision] = []
    async with connection.transaction():
        state = await lock_state(connection, environment)
        for signal in signals:
            stored, state = await _decide_locked(connection, state, signal, limits, environment)
            decided.append(stored)
    return decided


async def decide_signal(
    pool: asyncpg.Pool, signal: Signal, limits: RiskLimits, environment: str
) -> StoredDecision:
    """Decide a signal once (a redelivery gets the stored decision), atomically."""
    async with pool.acquire() as connection:
        return (await decide_batch(connection, [signal], limits, environment))[0]

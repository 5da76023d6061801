"""Risk state and decisions in PostgreSQL, decided under a row lock shared by every replica.

One decision is one transaction: the environment's `risk_state` row is locked FOR UPDATE (so
replicas decide one at a time and see each other's decisions, peaks and breaker), the context is
read, the pure rules decide, and the decision, the new peak or breaker state and the events
(`order.approved`, `risk.decision`, alerts) are written together through the outbox. A signal
already decided (a redelivery) returns its stored decision and publishes nothing new.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from mastertrade.core.db import Connection, one
from mastertrade.core.messages import AlertEvent, ApprovedOrder, RiskDecisionEvent, Signal
from mastertrade.core.outbox import add_to_outbox
from mastertrade.risk.domain import OrderRequest, Outcome, RiskContext, RiskDecision, RiskLimits
from mastertrade.risk.domain import decide as decide_rules
from mastertrade_model.topology import ALERTS, ORDERS

ENSURE_STATE = "INSERT INTO risk_state (environment) VALUES ($1) ON CONFLICT DO NOTHING"
LOCK_STATE = """
SELECT equity_peak, breaker_open, kill_switch FROM risk_state WHERE environment = $1 FOR UPDATE
"""
EXISTING = "SELECT outcome, approved_quantity, reasons::text AS reasons, client_order_id " \
    "FROM risk_decisions WHERE signal_id = $1"  # fmt: skip
# Approved buys stop counting as pending exposure once their order is finished (its fill, if
# any, is in `positions` from then on); only the few still pending are ever scanned.
SETTLE = """
UPDATE risk_decisions d SET pending = false FROM orders o
WHERE d.pending AND d.environment = $1 AND o.client_order_id = d.client_order_id
  AND o.status IN ('filled', 'rejected', 'cancelled')
"""
CONTEXT = """
WITH pending AS (
    SELECT symbol, approved_quantity * price AS value FROM risk_decisions
    WHERE environment = $1 AND pending
)
SELECT
    (SELECT equity FROM account_equity WHERE environment = $1) AS equity,
    (SELECT quantity FROM positions WHERE environment = $1 AND symbol = $2) AS position,
    (SELECT COALESCE(sum(value), 0) FROM pending WHERE symbol = $2) AS pending_value,
    (SELECT count(*) FROM (SELECT symbol FROM positions WHERE environment = $1 AND quantity > 0
                           UNION SELECT symbol FROM pending) open) AS open_positions,
    (SELECT count(*) FROM risk_decisions WHERE environment = $1 AND outcome <> 'rejected'
       AND decided_at > now() - interval '1 minute') AS recent
"""
INSERT_DECISION = """
INSERT INTO risk_decisions (signal_id, environment, symbol, side, outcome, requested_quantity,
    approved_quantity, price, reasons, client_order_id, pending)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $4 = 'buy' AND $5 <> 'rejected')
"""
UPDATE_PEAK = "UPDATE risk_state SET equity_peak = $2, updated_at = now() WHERE environment = $1"
TRIP = """
UPDATE risk_state SET breaker_open = true, breaker_reason = $2, breaker_tripped_at = now(),
    updated_at = now() WHERE environment = $1
"""


@dataclass(frozen=True)
class StoredDecision:
    outcome: Outcome
    quantity: Decimal
    reasons: list[str]
    client_order_id: str | None
    replayed: bool = False


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
) -> list[tuple[str, str, dict[str, Any]]]:
    """(exchange, routing key, payload) of every event this decision publishes."""
    events: list[tuple[str, str, dict[str, Any]]] = []
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


async def _replay(connection: Connection, signal_id: str) -> StoredDecision | None:
    row = await connection.fetchrow(EXISTING, signal_id)
    if row is None:
        return None
    reasons = json.loads(row["reasons"])
    outcome = Outcome(row["outcome"])
    return StoredDecision(
        outcome, row["approved_quantity"], reasons, row["client_order_id"], replayed=True
    )


async def _apply_state(
    connection: Connection, environment: str, decision: RiskDecision, limits: RiskLimits
) -> None:
    if decision.new_peak is not None:
        await connection.execute(UPDATE_PEAK, environment, decision.new_peak)
    if decision.trips_breaker:
        alert = breaker_alert(decision, limits)
        await connection.execute(TRIP, environment, alert.message)
        await add_to_outbox(connection, ALERTS.name, "alert.circuit_breaker", alert.to_json())


async def decide_signal(
    pool: asyncpg.Pool, signal: Signal, limits: RiskLimits, environment: str
) -> StoredDecision:
    """Decide a signal once (a redelivery gets the stored decision), atomically."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(ENSURE_STATE, environment)
        state = one(await connection.fetchrow(LOCK_STATE, environment), "risk state")
        replayed = await _replay(connection, signal.signal_id)
        if replayed is not None:
            return replayed
        await connection.execute(SETTLE, environment)
        row = one(await connection.fetchrow(CONTEXT, environment, signal.symbol), "context")
        request = OrderRequest(signal.symbol, signal.side, signal.quantity, signal.price)
        decision = decide_rules(request, build_context(state, row, signal.price), limits)
        approved = decision.outcome is not Outcome.REJECTED
        client_order_id = f"mt-{uuid.uuid4().hex[:28]}" if approved else None
        await connection.execute(
            INSERT_DECISION, signal.signal_id, environment, signal.symbol, signal.side,
            decision.outcome.value, signal.quantity, decision.quantity, signal.price,
            json.dumps(list(decision.reasons)), client_order_id,
        )  # fmt: skip
        await _apply_state(connection, environment, decision, limits)
        for exchange, key, payload in build_events(signal, decision, client_order_id):
            await add_to_outbox(connection, exchange, key, payload)
    return StoredDecision(decision.outcome, decision.quantity, list(decision.reasons),
                          client_order_id)  # fmt: skip

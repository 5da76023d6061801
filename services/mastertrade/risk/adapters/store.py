"""Risk state and decisions in PostgreSQL, decided in turn by every replica without a lock.

A batch of signals (one or many, see batcher.py) is decided in two round trips, whatever its
size, with no transaction held open between them:

1. one statement (`VIEW`), which writes nothing, reads the environment's `risk_state` (peak,
   breaker, kill switch and its `version`), the portfolio (`BatchView`) and the stored decisions
   of any signal already decided (a redelivery: it gets its stored decision back and publishes
   nothing new). Read every time, never cached: the database is what every replica shares and
   what survives a restart;
2. the pure rules decide each signal in arrival order, each seeing the ones before it in the
   view (as one transaction per signal would), and one statement (`WRITE`) stores every
   decision, the new peak or breaker state and the events (`order.approved`, `risk.decision`,
   alerts) in the outbox, leased to this process, which sends them after the commit
   (`OutboxSender`), and marks sent the earlier batches' events the broker has confirmed since.
   It writes only if `risk_state.version` is still the one read, and bumps it: when another
   replica (or an admin call) changed the state in between, it writes nothing and the batch is
   decided again on the new state (`decide_batch`). Replicas thus decide one batch after
   another, each seeing the others' decisions, peak and breaker, as a row lock made them, but
   without the lock's BEGIN, lock and COMMIT round trips.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from mastertrade.core.amounts import brief, exact_arithmetic
from mastertrade.core.db import Connection, one
from mastertrade.core.messages import (
    APPROVAL_LIFETIME_SECONDS,
    AlertEvent,
    ApprovedOrder,
    RiskDecisionEvent,
    Signal,
    stale_signal,
)
from mastertrade.core.outbox import (
    LEASED_UNTIL,
    Event,
    Written,
    mark_sent,
    mark_sent_cte,
    written_in_order,
)
from mastertrade.risk.domain import (
    OrderRequest,
    Outcome,
    RiskContext,
    RiskDecision,
    RiskLimits,
    assess_breaker,
    is_dust,
)
from mastertrade.risk.domain import decide as decide_rules
from mastertrade_model.topology import ALERTS, ORDERS

logger = logging.getLogger("mastertrade.risk")

ENSURE_STATE = "INSERT INTO risk_state (environment) VALUES ($1) ON CONFLICT DO NOTHING"
# An approved buy's order once finished (its fill, if any, is in `positions` from then on).
FINISHED = """
SELECT FROM orders o WHERE o.client_order_id = d.client_order_id
  AND o.status IN ('filled', 'rejected', 'cancelled')
"""
# An approval whose order the executor never recorded (its message dead-lettered) stops
# counting after a grace: a sell's would hold its coins back for ever and block every exit from
# the position, a buy's would hold its exposure for ever. A sell is let go after
# SELL_RECORD_GRACE, though the executor would still take it until APPROVAL_LIFETIME_SECONDS:
# one recorded late is checked against the coins the executor holds, so a second sell of the
# same coins is refused there. A buy is let go only once the executor would refuse it
# (APPROVAL_LIFETIME_SECONDS, and as long again for two pods' clocks), so a late buy can never
# break the exposure limits.
SELL_RECORD_GRACE = "interval '5 minutes'"
BUY_RECORD_GRACE = f"interval '{2 * APPROVAL_LIFETIME_SECONDS:.0f} seconds'"
RECORDED = "SELECT FROM orders o WHERE o.client_order_id = d.client_order_id"
# One snapshot, so the state's version stands for every decision, peak and breaker it shows (a
# risk batch writes them all with the version it bumps); it writes nothing, so it needs no commit.
# No row: the environment's first batch (ENSURE_STATE). Approved buys count as pending exposure,
# approved sells as quantity already being sold, until their order is finished (WRITE clears the
# flag of those). The order rate is read from per-second buckets (`risk_order_rate`, written by
# WRITE): at most 61 rows whatever the rate; the 61st second makes the window err on the safe
# side (a bucket counts while any part of it is less than a minute old). The equity's age is on
# the database's clock, as its `updated_at` is.
VIEW = f"""
WITH pending AS (
    SELECT symbol,
        COALESCE(sum(approved_quantity * price) FILTER (WHERE side = 'buy'), 0) AS value,
        COALESCE(sum(approved_quantity) FILTER (WHERE side = 'sell'), 0) AS selling
    FROM risk_decisions d
    WHERE environment = $1 AND pending AND NOT EXISTS ({FINISHED})
      AND (decided_at > now() - CASE side WHEN 'buy' THEN {BUY_RECORD_GRACE}
                                          ELSE {SELL_RECORD_GRACE} END
           OR EXISTS ({RECORDED}))
    GROUP BY symbol
), held AS (
    SELECT symbol, quantity, average_price, mark
    FROM positions WHERE environment = $1 AND quantity > 0
)
SELECT
    s.version, s.equity_peak, s.breaker_open, s.kill_switch,
    e.equity, extract(epoch FROM now() - e.updated_at)::float8 AS equity_age,
    (SELECT COALESCE(sum(orders), 0) FROM risk_order_rate
     WHERE environment = $1 AND second > now() - interval '61 seconds') AS recent,
    ARRAY(SELECT symbol FROM held ORDER BY symbol) AS held_symbols,
    ARRAY(SELECT quantity FROM held ORDER BY symbol) AS held_quantities,
    ARRAY(SELECT quantity * average_price FROM held ORDER BY symbol) AS held_costs,
    ARRAY(SELECT mark FROM held ORDER BY symbol) AS held_marks,
    ARRAY(SELECT symbol FROM pending ORDER BY symbol) AS pending_symbols,
    ARRAY(SELECT value FROM pending ORDER BY symbol) AS pending_values,
    ARRAY(SELECT selling FROM pending ORDER BY symbol) AS pending_selling,
    (SELECT json_agg(json_build_object(
        'signal_id', signal_id, 'outcome', outcome, 'quantity', approved_quantity::text,
        'reasons', reasons, 'client_order_id', client_order_id))
     FROM risk_decisions WHERE signal_id = ANY($2::text[])) AS priors
FROM risk_state s LEFT JOIN account_equity e ON e.environment = s.environment
WHERE s.environment = $1
"""
# Every decision of the batch, the peak (raised, never lowered here: the executor's equity raises
# it as well, migration 0033) and breaker (when they change), the pending flag cleared from
# approvals whose order has finished and from those the executor never recorded and would refuse
# now (the view no longer counts them: cleared, they no longer cost every batch a look), the
# batch's approvals added to this second's rate bucket (buckets older than the window dropped),
# the events sent since the last batch marked, and the batch's events (leased: this process sends
# them); outbox ids are taken in the events' order, so the sorted ids match them one to one. All
# of it only if the state's version is still `$20` (`state` bumps it, or returns no row and every
# part that waits on it writes nothing; the old rate buckets are dropped and the sent events
# marked either way): no row returned means another batch came first.
WRITE = f"""
WITH state AS (
    UPDATE risk_state SET
        version = version + 1,
        equity_peak = GREATEST(equity_peak, $12::numeric),
        breaker_open = breaker_open OR $13::boolean,
        breaker_reason = CASE WHEN $13::boolean THEN $14::text ELSE breaker_reason END,
        breaker_tripped_at = CASE WHEN $13::boolean THEN now() ELSE breaker_tripped_at END,
        updated_at = now()
    WHERE environment = $1 AND version = $20
    RETURNING version
), settled AS (
    UPDATE risk_decisions d SET pending = false
    WHERE d.pending AND d.environment = $1 AND EXISTS (SELECT FROM state)
      AND (EXISTS ({FINISHED})
           OR d.decided_at < now() - {BUY_RECORD_GRACE} AND NOT EXISTS ({RECORDED}))
), decisions AS (
    INSERT INTO risk_decisions (signal_id, environment, symbol, side, outcome,
        requested_quantity, approved_quantity, price, reasons, client_order_id, pending,
        signal_created_at)
    SELECT signal_id, $1, symbol, side, outcome, requested, approved, price, reasons::jsonb,
        client_order_id, outcome <> 'rejected', created_at
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::numeric[], $7::numeric[],
                $8::numeric[], $9::text[], $10::text[], $11::timestamptz[])
        AS d(signal_id, symbol, side, outcome, requested, approved, price, reasons,
             client_order_id, created_at)
    WHERE EXISTS (SELECT FROM state)
), rate AS (
    INSERT INTO risk_order_rate (environment, second, orders)
    SELECT $1, date_trunc('second', now()), $18::integer
    WHERE $18::integer > 0 AND EXISTS (SELECT FROM state)
    ON CONFLICT (environment, second) DO UPDATE
    SET orders = risk_order_rate.orders + EXCLUDED.orders
), expired AS (
    DELETE FROM risk_order_rate WHERE environment = $1 AND second < now() - interval '2 minutes'
), {mark_sent_cte(19)}
INSERT INTO outbox (exchange, routing_key, payload, leased_until)
SELECT exchange, routing_key, payload::jsonb, {LEASED_UNTIL}
FROM unnest($15::text[], $16::text[], $17::text[]) WITH ORDINALITY
    AS event(exchange, routing_key, payload, position)
WHERE EXISTS (SELECT FROM state)
ORDER BY position
RETURNING id
"""


@dataclass(frozen=True)
class StoredDecision:
    outcome: Outcome
    quantity: Decimal
    reasons: list[str]
    client_order_id: str | None
    replayed: bool = False


@dataclass
class BatchView:
    """The portfolio as the rules see it, kept current as the batch's decisions are made."""

    version: int
    equity: Decimal | None
    equity_peak: Decimal | None
    breaker_open: bool
    kill_switch: bool
    recent: int
    equity_age: float
    held: dict[str, Decimal]
    held_cost: dict[str, Decimal]  # what each holding cost: dust does not count as a position
    held_mark: dict[str, Decimal]  # each holding's price at the executor's latest valuation
    pending: dict[str, Decimal]
    selling: dict[str, Decimal]
    decided: dict[str, StoredDecision] = field(default_factory=dict)

    @classmethod
    def read(cls, row: asyncpg.Record) -> BatchView:
        view = cls(
            version=row["version"], equity=row["equity"], equity_peak=row["equity_peak"],
            breaker_open=bool(row["breaker_open"]), kill_switch=bool(row["kill_switch"]),
            recent=int(row["recent"]), equity_age=row["equity_age"] or 0.0,
            held=dict(zip(row["held_symbols"], row["held_quantities"], strict=True)),
            held_cost=dict(zip(row["held_symbols"], row["held_costs"], strict=True)),
            held_mark=_positive(row["held_symbols"], [m or Decimal(0) for m in row["held_marks"]]),
            pending=_positive(row["pending_symbols"], row["pending_values"]),
            selling=_positive(row["pending_symbols"], row["pending_selling"]),
        )  # fmt: skip
        for prior in json.loads(row["priors"] or "[]"):
            view.decided[prior["signal_id"]] = StoredDecision(
                Outcome(prior["outcome"]), Decimal(prior["quantity"]), prior["reasons"],
                prior["client_order_id"], replayed=True,
            )  # fmt: skip
        return view

    def open_symbols(self) -> set[str]:
        """The symbols held beyond dust (domain/rules.py: judged on what the holding is worth
        at its last mark, at its cost until it has one) or being bought."""
        held = {
            symbol for symbol, cost in self.held_cost.items()
            if not is_dust(self._worth(symbol, cost), self.equity)
        }  # fmt: skip
        return held | self.pending.keys()

    def _worth(self, symbol: str, cost: Decimal) -> Decimal:
        mark = self.held_mark.get(symbol)
        with exact_arithmetic():
            return cost if mark is None else self.held[symbol] * mark

    def context(self, symbol: str, price: Decimal) -> RiskContext:
        """What the rules see of `symbol` for a signal at `price`: what is held valued at the
        higher of that price and the holding's last mark (a limit buy far below the market
        would count it at its limit), plus the buys approved and not filled at their price."""
        position, open_symbols = self.held.get(symbol, Decimal(0)), self.open_symbols()
        value = max(price, self.held_mark.get(symbol, price))
        with exact_arithmetic():  # as the view sums it: a cap compared with a rounded figure
            selling = position - self.selling.get(symbol, Decimal(0))
            exposure = position * value + self.pending.get(symbol, Decimal(0))
        return RiskContext(
            equity=self.equity,
            equity_peak=self.equity_peak,
            position_quantity=selling,
            symbol_exposure=exposure,
            open_positions=len(open_symbols),
            position_open=symbol in open_symbols,
            orders_last_minute=self.recent,
            breaker_open=self.breaker_open,
            kill_switch=self.kill_switch,
            equity_age=self.equity_age,
        )

    def apply(self, signal: Signal, decision: RiskDecision) -> None:
        """What the stored decision changes for the next signal: as the database would show."""
        if decision.outcome is not Outcome.REJECTED:
            self.recent += 1
            with exact_arithmetic():
                self._add_pending(signal, decision.quantity)
        if decision.new_peak is not None:
            self.equity_peak = decision.new_peak
        self.breaker_open = self.breaker_open or decision.trips_breaker

    def _add_pending(self, signal: Signal, quantity: Decimal) -> None:
        symbol = signal.symbol
        if signal.side == "buy":
            self.pending[symbol] = self.pending.get(symbol, Decimal(0)) + quantity * signal.price
        else:
            self.selling[symbol] = self.selling.get(symbol, Decimal(0)) + quantity


def _positive(symbols: Sequence[str], amounts: Sequence[Decimal]) -> dict[str, Decimal]:
    return {symbol: amount for symbol, amount in zip(symbols, amounts, strict=True) if amount > 0}


def build_events(
    signal: Signal, decision: RiskDecision, client_order_id: str | None, environment: str
) -> list[Event]:
    """(exchange, routing key, payload) of every event this decision, taken against
    `environment`'s books, publishes."""
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
            sized_price=signal.price, reduce_only=signal.side == "sell", environment=environment,
        )  # fmt: skip
        events.append((ORDERS.name, "order.approved", order.to_json()))
    if decision.outcome is Outcome.REJECTED:
        # keyed by the rule, not its reason: the numbers in the reason change from one signal
        # to the next (the equity's age, the exposure), and every rejection would be new
        alert = AlertEvent(
            kind="order_rejected", severity="warning", source="risk_manager",
            title=f"Risk rejected {signal.side} {brief(signal.quantity)} {signal.symbol}",
            message="; ".join(reasons)[:4000],
            dedup_key=f"risk-rejected:{signal.symbol}:{decision.rule}",
        )  # fmt: skip
        events.append((ALERTS.name, "alert.order_rejected", alert.to_json()))
    return events


def breaker_alert(fall: Decimal, limits: RiskLimits, environment: str, version: int) -> AlertEvent:
    """The trip's alert; its dedup key is the trip's own (the state's version it was decided
    on), so a trip soon after a reset is not taken for a repeat of the one before."""
    return AlertEvent(
        kind="circuit_breaker", severity="critical", source="risk_manager",
        title=f"Circuit breaker tripped ({environment}): no new exposure",
        message=f"drawdown {fall:.2%} from the equity peak reached "
        f"{limits.max_portfolio_drawdown_pct:.2%}; only reducing orders pass until an admin "
        "resets it (POST /api/v1/admin/circuit-breaker/reset)",
        dedup_key=f"circuit-breaker-tripped:{environment}:{version}",
    )  # fmt: skip


async def read_view(
    connection: Connection, environment: str, signals: Sequence[Signal]
) -> BatchView:
    """The state and portfolio the batch is decided on (the state is created on the very
    first decision), with the decisions stored already for any of the signals."""
    ids = list({signal.signal_id: None for signal in signals})
    row = await connection.fetchrow(VIEW, environment, ids)
    if row is None:
        await connection.execute(ENSURE_STATE, environment)
        row = await connection.fetchrow(VIEW, environment, ids)
    return BatchView.read(one(row, "risk state"))


DECISION_COLUMNS = 10


@dataclass
class Writes:
    """The rows one batch stores, as the arrays of the WRITE statement."""

    environment: str
    first_peak: Decimal | None
    decisions: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    breaker_reason: str | None = None

    def arguments(self, view: BatchView) -> list[Any]:
        """$1 to $18 of WRITE (then come the ids to mark sent and the version read)."""
        columns = [list(column) for column in zip(*self.decisions, strict=True)] or [
            [] for _ in range(DECISION_COLUMNS)
        ]
        peak_changed = view.equity_peak != self.first_peak
        return [
            self.environment, *columns, view.equity_peak if peak_changed else None,
            self.breaker_reason is not None, self.breaker_reason,
            [e[0] for e in self.events], [e[1] for e in self.events],
            [json.dumps(e[2]) for e in self.events], self.approvals(),
        ]  # fmt: skip

    def trip(self, fall: Decimal, limits: RiskLimits, version: int) -> Event:
        """The breaker trips in this batch: its reason stored, and the alert to publish."""
        alert = breaker_alert(fall, limits, self.environment, version)
        self.breaker_reason = alert.message
        return (ALERTS.name, "alert.circuit_breaker", alert.to_json())

    def approvals(self) -> int:
        """What the batch adds to the order rate: its decisions that are not rejections."""
        return sum(1 for decision in self.decisions if decision[3] != Outcome.REJECTED.value)


def _decide_one(
    signal: Signal, view: BatchView, limits: RiskLimits, writes: Writes, now: datetime
) -> StoredDecision:
    stale = stale_signal(signal.created_at, now)
    request = OrderRequest(signal.symbol, signal.side, signal.quantity, signal.price, stale)
    decision = decide_rules(request, view.context(signal.symbol, signal.price), limits)
    approved = decision.outcome is not Outcome.REJECTED
    client_order_id = f"mt-{uuid.uuid4().hex[:28]}" if approved else None
    events = build_events(signal, decision, client_order_id, writes.environment)
    if decision.trips_breaker:
        events.insert(0, writes.trip(decision.drawdown, limits, view.version))
    writes.decisions.append((
        signal.signal_id, signal.symbol, signal.side, decision.outcome.value, signal.quantity,
        decision.quantity, signal.price, json.dumps(list(decision.reasons)), client_order_id,
        signal.created_at,
    ))  # fmt: skip
    writes.events.extend(events)
    view.apply(signal, decision)
    return StoredDecision(decision.outcome, decision.quantity, list(decision.reasons),
                          client_order_id)  # fmt: skip


async def decide_batch(
    connection: Connection,
    signals: Sequence[Signal],
    limits: RiskLimits,
    environment: str,
    sent: Sequence[int] = (),
) -> tuple[list[StoredDecision], list[Written]]:
    """Decide the signals in order, atomically (all or none), on `connection`, and mark the
    outbox rows `sent`; returns the decisions and the (outbox id, event) of everything to
    publish. Decided again, from a new view, each time another batch changed the state first."""
    attempt = 0
    while True:
        attempt += 1
        view = await read_view(connection, environment, signals)
        decided, writes = _decide_in_order(signals, view, limits, environment)
        if not writes.decisions:  # only redeliveries
            await mark_sent(connection, sent)
            return decided, []
        arguments = writes.arguments(view)
        rows = await connection.fetch(WRITE, *arguments, list(sent), view.version)
        if rows:
            return decided, written_in_order(rows, writes.events)
        logger.debug("risk state changed under a batch of %d signals (attempt %d): deciding "
                     "again", len(signals), attempt)  # fmt: skip
        sent = ()  # the statement that lost marked them all the same


def _decide_in_order(
    signals: Sequence[Signal], view: BatchView, limits: RiskLimits, environment: str
) -> tuple[list[StoredDecision], Writes]:
    """Each signal decided against the view as the ones before it left it; a signal decided
    already (stored, or earlier in the batch) gets its decision back."""
    writes = Writes(environment, first_peak=view.equity_peak)
    decided: list[StoredDecision] = []
    now = datetime.now(UTC)
    for signal in signals:
        stored = view.decided.get(signal.signal_id)
        if stored is None:
            stored = _decide_one(signal, view, limits, writes, now)
            view.decided[signal.signal_id] = replace_replayed(stored)
        decided.append(stored)
    return decided, writes


def replace_replayed(stored: StoredDecision) -> StoredDecision:
    """How a repeat of the same signal within the batch sees it: decided, nothing to publish."""
    return StoredDecision(stored.outcome, stored.quantity, stored.reasons,
                          stored.client_order_id, replayed=True)  # fmt: skip


async def watch_breaker(
    connection: Connection, limits: RiskLimits, environment: str
) -> list[Written]:
    """Trip the breaker when the drawdown from the peak reached the limit with no signal to
    decide (the executor revalues the account between signals: a fall would otherwise trip it,
    and raise its alert, only when the next signal came). Written as a batch with no decision
    would be; returns the events to send: none when nothing tripped, or when a batch changed
    the state first (it decided on the same drawdown, and the next look sees what it left)."""
    view = await read_view(connection, environment, ())
    context = RiskContext(view.equity, view.equity_peak, breaker_open=view.breaker_open)
    _, trips, fall, _ = assess_breaker(context, limits)
    if not trips:
        return []
    writes = Writes(environment, first_peak=view.equity_peak)
    writes.events.append(writes.trip(fall, limits, view.version))
    rows = await connection.fetch(WRITE, *writes.arguments(view), [], view.version)
    return written_in_order(rows, writes.events) if rows else []

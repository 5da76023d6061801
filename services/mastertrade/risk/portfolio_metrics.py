"""Trading-state gauges of risk_manager: equity, drawdown against its limit, breaker, positions,
orders, fills, risk decisions and strategies by status, as Prometheus metrics; and the outcome
of the backup runs (the backup CronJob records them in `backup_runs`), for the "backup failing
or missing" alerts.

The state lives in PostgreSQL (shared by every replica of the risk manager and the order
executor), so the gauges are refreshed from it every few seconds rather than counted in one
process: each replica reports the same account, a restart loses nothing, and `max without
(pod, instance)` reads it in PromQL. Figures are NUMERIC in PostgreSQL; Prometheus samples are
floats, which is fine for a graph and an alert threshold (the books stay exact in the database).
Whole-history totals (orders, fills, decisions) come from `trading_totals`, kept by triggers with
the writes (migration 0028), so a refresh does not count whole tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import asyncpg
from prometheus_client import CollectorRegistry, Gauge

logger = logging.getLogger("mastertrade.risk.metrics")
REFRESH_SECONDS = 5.0

ACCOUNT = """
SELECT s.equity_peak, s.breaker_open, s.kill_switch, e.equity, e.cash, e.positions_value
FROM (SELECT $1::text AS environment) env
LEFT JOIN risk_state s USING (environment) LEFT JOIN account_equity e USING (environment)
"""
POSITIONS = """
SELECT symbol, quantity, average_price FROM positions WHERE environment = $1 AND quantity > 0
"""
# Orders by status, fills by side, decisions by outcome: totals kept by triggers with the writes
# (migration 0028), not counted over whole tables. The deltas the triggers appended since the
# last refresh are folded into the totals (replicas folding at once each take other rows:
# a row another deletes is skipped), then totals and what is left of the deltas are read.
FOLD_TOTALS = """
WITH folded AS (
    DELETE FROM trading_total_deltas WHERE id IN (
        SELECT id FROM trading_total_deltas ORDER BY id LIMIT 10000)
    RETURNING environment, metric, label, count, notional
)
INSERT INTO trading_totals AS t (environment, metric, label, count, notional)
SELECT environment, metric, label, sum(count), sum(notional) FROM folded
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
ON CONFLICT (environment, metric, label) DO UPDATE
SET count = t.count + EXCLUDED.count, notional = t.notional + EXCLUDED.notional
"""
TOTALS = """
SELECT metric, label, sum(count) AS n, sum(notional) AS notional FROM (
    SELECT metric, label, count, notional FROM trading_totals WHERE environment = $1
    UNION ALL
    SELECT metric, label, count, notional FROM trading_total_deltas WHERE environment = $1
) t GROUP BY metric, label
"""
STRATEGIES = "SELECT status, count(*) AS n FROM strategies GROUP BY status"
STRATEGY_STATUSES = ("generated", "backtested", "active", "paused", "retired")
BACKUPS = """
SELECT max(finished_at) FILTER (WHERE succeeded) AS last_success,
       (array_agg(succeeded ORDER BY finished_at DESC))[1] AS last_succeeded
FROM backup_runs
"""
ORDER_STATUSES = ("new", "submitted", "partially_filled", "filled", "cancelled", "rejected")
OUTCOMES = ("approved", "resized", "rejected")
SIDES = ("buy", "sell")


def drawdown(equity: Decimal | None, peak: Decimal | None) -> Decimal:
    """Fraction of the equity peak lost (0 with no peak yet, never below 0)."""
    if equity is None or not peak:
        return Decimal(0)
    return max(Decimal(0), (peak - equity) / peak)


@dataclass
class PortfolioMetrics:
    """The gauges, labelled with the trading environment (paper or live)."""

    registry: CollectorRegistry
    environment: str
    drawdown_limit: Decimal

    def __post_init__(self) -> None:
        def gauge(name: str, text: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, text, ["environment", *labels], registry=self.registry)

        self.equity = gauge("mastertrade_equity_usdt", "Account equity (cash + positions), USDT")
        self.cash = gauge("mastertrade_cash_usdt", "Free cash of the account, USDT")
        self.positions_value = gauge(
            "mastertrade_positions_value_usdt", "Positions at market, USDT"
        )
        self.peak = gauge("mastertrade_equity_peak_usdt", "Equity peak the drawdown is from")
        self.drawdown = gauge(
            "mastertrade_drawdown_ratio", "Drawdown from the equity peak, as a fraction"
        )
        self.limit = gauge(
            "mastertrade_drawdown_limit_ratio",
            "MAX_PORTFOLIO_DRAWDOWN_PCT: the drawdown that trips the circuit breaker",
        )
        self.breaker = gauge(
            "mastertrade_circuit_breaker_open", "1 while the circuit breaker is tripped"
        )
        self.kill_switch = gauge("mastertrade_kill_switch_on", "1 while the kill switch is on")
        self.open_positions = gauge("mastertrade_open_positions", "Symbols held")
        self.position_quantity = gauge(
            "mastertrade_position_quantity", "Quantity held, by symbol", ("symbol",)
        )
        self.position_cost = gauge(
            "mastertrade_position_cost_usdt", "Quantity times average price, by symbol", ("symbol",)
        )
        self.orders = gauge("mastertrade_orders", "Orders stored, by status", ("status",))
        self.fills = gauge("mastertrade_fills", "Fills stored, by order side", ("side",))
        self.fill_notional = gauge(
            "mastertrade_fill_notional_usdt",
            "Sum of price times quantity filled, by side",
            ("side",),
        )
        self.decisions = gauge(
            "mastertrade_risk_decisions", "Risk decisions stored, by outcome", ("outcome",)
        )
        self.strategies = Gauge(
            "mastertrade_strategies",
            "Strategies stored, by status (generated, backtested, active, paused, retired)",
            ["status"],
            registry=self.registry,
        )
        self.backup_success = Gauge(
            "mastertrade_backup_last_success_timestamp_seconds",
            "Unix time of the last backup that succeeded (0: none recorded)",
            registry=self.registry,
        )
        self.backup_failed = Gauge(
            "mastertrade_backup_last_run_failed",
            "1 when the last backup run recorded failed",
            registry=self.registry,
        )
        self.refresh_errors = Gauge(
            "mastertrade_portfolio_metrics_stale",
            "1 when the last refresh of these gauges from PostgreSQL failed",
            registry=self.registry,
        )

    async def refresh(self, pool: asyncpg.Pool) -> None:
        """Read the state once and set every gauge from it."""
        env = self.environment
        async with pool.acquire() as connection:
            account = await connection.fetchrow(ACCOUNT, env)
            positions = await connection.fetch(POSITIONS, env)
            await connection.execute(FOLD_TOTALS)
            totals = {(r["metric"], r["label"]): r for r in await connection.fetch(TOTALS, env)}
            strategies = {r["status"]: r["n"] for r in await connection.fetch(STRATEGIES)}
            backups = await connection.fetchrow(BACKUPS)
        for status in STRATEGY_STATUSES:
            self.strategies.labels(status).set(strategies.get(status, 0))
        self._set_backups(backups)
        self._set_account(account)
        self.position_quantity.clear()
        self.position_cost.clear()
        for row in positions:
            self.position_quantity.labels(env, row["symbol"]).set(float(row["quantity"]))
            cost = row["quantity"] * row["average_price"]
            self.position_cost.labels(env, row["symbol"]).set(float(cost))
        self.open_positions.labels(env).set(len(positions))
        self._set_totals(totals)

    def _set_totals(self, totals: dict[tuple[str, str], asyncpg.Record]) -> None:
        env = self.environment

        def total(metric: str, label: str, column: str = "n") -> float:
            row = totals.get((metric, label))
            return float(row[column]) if row is not None else 0.0

        for status in ORDER_STATUSES:
            self.orders.labels(env, status).set(total("orders", status))
        for side in SIDES:
            self.fills.labels(env, side).set(total("fills", side))
            self.fill_notional.labels(env, side).set(total("fills", side, "notional"))
        for outcome in OUTCOMES:
            self.decisions.labels(env, outcome).set(total("decisions", outcome))

    def _set_backups(self, backups: asyncpg.Record | None) -> None:
        last_success = backups["last_success"] if backups else None
        self.backup_success.set(last_success.timestamp() if last_success else 0)
        self.backup_failed.set(1 if backups and backups["last_succeeded"] is False else 0)

    def _set_account(self, account: asyncpg.Record | None) -> None:
        env = self.environment
        self.limit.labels(env).set(float(self.drawdown_limit))
        if account is None:
            return
        for gauge, column in (
            (self.equity, "equity"),
            (self.cash, "cash"),
            (self.positions_value, "positions_value"),
            (self.peak, "equity_peak"),
        ):
            if account[column] is not None:
                gauge.labels(env).set(float(account[column]))
        self.drawdown.labels(env).set(float(drawdown(account["equity"], account["equity_peak"])))
        self.breaker.labels(env).set(1 if account["breaker_open"] else 0)
        self.kill_switch.labels(env).set(1 if account["kill_switch"] else 0)

    async def run(self, pool: Callable[[], asyncpg.Pool], stop: asyncio.Event) -> None:
        """Refresh every REFRESH_SECONDS until `stop`; a failed read marks the gauges stale."""
        while not stop.is_set():
            try:
                await self.refresh(pool())
                self.refresh_errors.set(0)
            except Exception as error:  # the database may be down: /health says so
                self.refresh_errors.set(1)
                logger.warning("reading the trading state for the metrics failed: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REFRESH_SECONDS)

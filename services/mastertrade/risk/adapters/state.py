"""Reading and changing the risk state by admin calls: breaker reset, kill switch."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from mastertrade.core.db import one
from mastertrade.core.messages import AlertEvent
from mastertrade.core.outbox import add_to_outbox
from mastertrade.risk.adapters.store import ENSURE_STATE
from mastertrade_model.topology import ALERTS

logger = logging.getLogger("mastertrade.risk")

STATE = """
SELECT s.environment, s.equity_peak, s.breaker_open, s.breaker_reason, s.breaker_tripped_at,
       s.kill_switch, e.equity, e.updated_at AS equity_at
FROM risk_state s LEFT JOIN account_equity e USING (environment) WHERE s.environment = $1
"""
# The peak restarts from today's equity: kept at the old peak, the breaker would trip again on
# the very next signal, and a reset would mean nothing (an account at zero keeps its peak: there
# is nothing to restart from). Only an open breaker is reset: on a closed one, a reset (a double
# click, a client's retry) would lower the peak each time, and walk the drawdown limit down one
# call at a time. RESET and KILL bump the version when they change something: a batch decided
# on the state before them is decided again after them (store.py). Each returns a row when it
# changed the state, and then alone is its alert sent.
RESET = """
UPDATE risk_state SET breaker_open = false, breaker_reason = NULL, breaker_tripped_at = NULL,
    equity_peak = COALESCE(
        (SELECT equity FROM account_equity WHERE environment = $1 AND equity > 0), equity_peak),
    version = version + 1, updated_at = now()
WHERE environment = $1 AND breaker_open
RETURNING true
"""
KILL = """
UPDATE risk_state SET kill_switch = $2, version = version + 1, updated_at = now()
WHERE environment = $1 AND kill_switch IS DISTINCT FROM $2
RETURNING true
"""
DECISIONS = """
SELECT signal_id, symbol, side, outcome, requested_quantity, approved_quantity, price,
       reasons::text AS reasons, client_order_id, decided_at
FROM risk_decisions WHERE environment = $1 ORDER BY decided_at DESC LIMIT $2
"""


async def fetch_state(pool: asyncpg.Pool, environment: str) -> dict[str, Any]:
    async with pool.acquire() as connection:
        await connection.execute(ENSURE_STATE, environment)
        row = await connection.fetchrow(STATE, environment)
    return dict(one(row, "risk state"))


async def _admin_change(
    pool: asyncpg.Pool, environment: str, sql: str, args: tuple[Any, ...], alert: AlertEvent
) -> dict[str, Any]:
    """The state after `sql`, which changes it or finds nothing to change (then no alert)."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(ENSURE_STATE, environment)
        if await connection.fetchval(sql, environment, *args):
            await add_to_outbox(connection, ALERTS.name, f"alert.{alert.kind}", alert.to_json())
        else:
            logger.info("%s: nothing to change (%s)", alert.title, environment)
        row = await connection.fetchrow(STATE, environment)
    return dict(one(row, "risk state"))


async def apply_breaker_reset(pool: asyncpg.Pool, environment: str, who: str) -> dict[str, Any]:
    alert = AlertEvent(
        kind="circuit_breaker", severity="warning", source="risk_manager",
        title="Circuit breaker reset by an admin",
        message=f"reset by {who}; the equity peak restarts from the current equity",
    )  # fmt: skip
    return await _admin_change(pool, environment, RESET, (), alert)


async def apply_kill_switch(
    pool: asyncpg.Pool, environment: str, enabled: bool, who: str
) -> dict[str, Any]:
    alert = AlertEvent(
        kind="kill_switch", severity="critical" if enabled else "warning",
        source="risk_manager", title=f"Kill switch {'ON' if enabled else 'off'}",
        message=f"set by {who}",
    )  # fmt: skip
    return await _admin_change(pool, environment, KILL, (enabled,), alert)


async def fetch_decisions(pool: asyncpg.Pool, environment: str, limit: int) -> list[dict[str, Any]]:
    rows = await pool.fetch(DECISIONS, environment, limit)
    return [dict(row) for row in rows]

"""The daily report's rows in PostgreSQL: the claim of a (day, environment), the end of the
latest claimed (where a catch-up starts), and the figures.

`claim_report` inserts the day's row with ON CONFLICT DO NOTHING: a replica claiming the same
day at the same moment waits for the first one's transaction and then finds the row there, so
only one of them writes the report, whatever the timing. The figures are read in one statement
(one snapshot); amounts stay NUMERIC -> Decimal, carried in JSON as text, never as floats.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

from mastertrade.alerts.domain.report import DailyFigures, Holding
from mastertrade.core.db import Connection

ENVIRONMENTS = """
SELECT environment FROM account_equity UNION SELECT environment FROM balances ORDER BY 1
"""
CLAIM = """
INSERT INTO alert_daily_reports (report_date, environment, window_end) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING RETURNING 1
"""
LAST_END = "SELECT max(window_end) FROM alert_daily_reports WHERE environment = $1"
LINK = "UPDATE alert_daily_reports SET alert_id = $3 WHERE report_date = $1 AND environment = $2"
FIGURES = """
SELECT t.fills, t.traded_value,
    (SELECT json_agg(json_build_object('asset', asset, 'total', total::text) ORDER BY asset)
     FROM (SELECT COALESCE(f.fee_asset, '') AS asset, sum(f.fee) AS total
           FROM fills f JOIN orders o USING (client_order_id)
           WHERE o.environment = $1 AND f.filled_at >= $2 AND f.filled_at < $3
           GROUP BY 1) fee) AS fees,
    (SELECT count(*) FROM orders WHERE environment = $1 AND status = 'rejected'
       AND updated_at >= $2 AND updated_at < $3) AS orders_rejected,
    (SELECT count(*) FROM risk_decisions WHERE environment = $1 AND outcome = 'rejected'
       AND decided_at >= $2 AND decided_at < $3) AS signals_rejected,
    (SELECT equity FROM account_equity WHERE environment = $1) AS equity,
    r.equity_peak, COALESCE(r.breaker_open, false) AS breaker_open, r.breaker_reason,
    COALESCE(r.kill_switch, false) AS kill_switch,
    (SELECT json_agg(json_build_object('symbol', symbol, 'quantity', quantity::text,
                     'average_price', average_price::text) ORDER BY symbol)
     FROM positions WHERE environment = $1 AND quantity > 0) AS positions
FROM (SELECT count(*) AS fills, COALESCE(sum(f.price * f.quantity), 0) AS traded_value
      FROM fills f JOIN orders o USING (client_order_id)
      WHERE o.environment = $1 AND f.filled_at >= $2 AND f.filled_at < $3) t
LEFT JOIN risk_state r ON r.environment = $1
"""


async def fetch_environments(connection: Connection) -> list[str]:
    """The trading environments that have an account (an equity or a balance stored)."""
    return [row["environment"] for row in await connection.fetch(ENVIRONMENTS)]


async def claim_report(connection: Connection, day: date, environment: str, end: datetime) -> bool:
    """Whether this transaction is the one to write the report of (day, environment)."""
    return await connection.fetchval(CLAIM, day, environment, end) is not None


async def last_report_end(connection: Connection, environment: str) -> datetime | None:
    """The end of the window of the environment's latest report claimed (None: none yet)."""
    end: datetime | None = await connection.fetchval(LAST_END, environment)
    return end


async def link_report(
    connection: Connection, day: date, environment: str, alert_id: int | None
) -> None:
    await connection.execute(LINK, day, environment, alert_id)


async def fetch_figures(
    connection: Connection, environment: str, start: datetime, end: datetime
) -> DailyFigures:
    """The environment's activity in [start, end) and its state now."""
    row = await connection.fetchrow(FIGURES, environment, start, end)
    assert row is not None  # the statement always returns its one row
    fees = json.loads(row["fees"] or "[]")
    positions = json.loads(row["positions"] or "[]")
    return DailyFigures(
        environment=environment,
        fills=row["fills"],
        traded_value=row["traded_value"],
        fees=tuple((fee["asset"], Decimal(fee["total"])) for fee in fees),
        orders_rejected=row["orders_rejected"],
        signals_rejected=row["signals_rejected"],
        equity=row["equity"],
        equity_peak=row["equity_peak"],
        breaker_open=row["breaker_open"],
        breaker_reason=row["breaker_reason"],
        kill_switch=row["kill_switch"],
        positions=tuple(
            Holding(p["symbol"], Decimal(p["quantity"]), Decimal(p["average_price"]))
            for p in positions
        ),
    )

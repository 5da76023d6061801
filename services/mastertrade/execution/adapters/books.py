"""The account's books in PostgreSQL: quote-asset balance, positions, fills, equity.

Rows are locked in one order everywhere (order, then balance, then position; a live fill whose
commission is paid in a third coin, BNB, locks the traded symbol's position, then that coin's)
so concurrent transactions never deadlock; a valuation writing the positions' marks takes none
it would wait for (`SET_MARKS`). The pure ledger decides; this module reads and writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import asyncpg

from mastertrade.core.db import Connection, one
from mastertrade.execution.domain.ledger import Position, derive_equity
from mastertrade.execution.domain.paper import PaperFill

OPEN_ACCOUNT = """
INSERT INTO balances (environment, asset, free) VALUES ($1, $2, $3)
ON CONFLICT (environment, asset) DO NOTHING
"""
LOCK_BALANCE = "SELECT free, locked FROM balances WHERE environment = $1 AND asset = $2 FOR UPDATE"
SET_BALANCE = """
UPDATE balances SET free = $3, locked = $4, updated_at = now() WHERE environment = $1 AND asset = $2
"""
# A symbol's first position row is made before it is locked: with no row, the lock would lock
# nothing, and two first fills of a symbol would each write their own position over the other's
MAKE_POSITION = """
INSERT INTO positions (environment, symbol) VALUES ($1, $2)
ON CONFLICT (environment, symbol) DO NOTHING
"""
LOCK_POSITION = """
SELECT quantity, average_price FROM positions WHERE environment = $1 AND symbol = $2 FOR UPDATE
"""
SET_POSITION = """
INSERT INTO positions (environment, symbol, quantity, average_price) VALUES ($1, $2, $3, $4)
ON CONFLICT (environment, symbol) DO UPDATE
SET quantity = EXCLUDED.quantity, average_price = EXCLUDED.average_price, updated_at = now()
"""
ADD_FILL = """
INSERT INTO fills (client_order_id, fill_id, price, quantity, fee, fee_asset)
VALUES ($1, $2, $3, $4, $5, $6)
"""
POSITIONS = "SELECT symbol, quantity, average_price FROM positions WHERE environment = $1"
CASH = "SELECT COALESCE(sum(free + locked), 0) FROM balances WHERE environment = $1 AND asset = $2"
SET_EQUITY = """
INSERT INTO account_equity (environment, cash, positions_value, equity) VALUES ($1, $2, $3, $4)
ON CONFLICT (environment) DO UPDATE SET cash = EXCLUDED.cash,
    positions_value = EXCLUDED.positions_value, equity = EXCLUDED.equity, updated_at = now()
"""
# Each position's mark at this valuation (NULL: no usable quote), for the risk manager's
# exposure (migration 0045); a row whose mark did not move is left alone, and so is one another
# transaction holds (a fill being booked: it locks positions in an order of its own, and waiting
# here could deadlock with it): its mark is refreshed at the next valuation
SET_MARKS = """
WITH free AS (
    SELECT symbol FROM positions WHERE environment = $1 AND symbol = ANY($2::text[])
    ORDER BY symbol FOR NO KEY UPDATE SKIP LOCKED
)
UPDATE positions p SET mark = m.mark
FROM unnest($2::text[], $3::numeric[]) AS m(symbol, mark) JOIN free USING (symbol)
WHERE p.environment = $1 AND p.symbol = m.symbol AND p.mark IS DISTINCT FROM m.mark
"""


async def open_account(pool: asyncpg.Pool, environment: str, asset: str, amount: Decimal) -> None:
    """Give a new paper account its starting balance (never touches an existing one)."""
    await pool.execute(OPEN_ACCOUNT, environment, asset, amount)


async def lock_balance(
    connection: Connection, environment: str, asset: str
) -> tuple[Decimal, Decimal]:
    row = one(await connection.fetchrow(LOCK_BALANCE, environment, asset), f"{asset} balance")
    return row["free"], row["locked"]


async def set_balance(
    connection: Connection, environment: str, asset: str, free: Decimal, locked: Decimal
) -> None:
    await connection.execute(SET_BALANCE, environment, asset, free, locked)


async def lock_position(connection: Connection, environment: str, symbol: str) -> Position:
    """The symbol's position, locked until the transaction ends (made, empty, if it was none)."""
    await connection.execute(MAKE_POSITION, environment, symbol)
    row = one(await connection.fetchrow(LOCK_POSITION, environment, symbol), f"{symbol} position")
    return Position(row["quantity"], row["average_price"])


async def set_position(
    connection: Connection, environment: str, symbol: str, position: Position
) -> None:
    await connection.execute(
        SET_POSITION, environment, symbol, position.quantity, position.average_price
    )


async def add_fill(
    connection: Connection, client_order_id: str, fill_id: str, fill: PaperFill, fee_asset: str
) -> None:
    """Book one fill; the (order, fill id) key refuses the same fill twice."""
    await connection.execute(
        ADD_FILL, client_order_id, fill_id, fill.price, fill.quantity, fill.fee, fee_asset
    )


async def fetch_positions(connection: Connection, environment: str) -> dict[str, Position]:
    rows = await connection.fetch(POSITIONS, environment)
    return {r["symbol"]: Position(r["quantity"], r["average_price"]) for r in rows}


async def store_equity(
    connection: Connection, environment: str, asset: str, marks: Mapping[str, Decimal]
) -> Decimal | None:
    """Value the account at `marks` and store it for the risk manager; returns equity (None:
    a position has no mark, nothing is stored; see `store_valuation`)."""
    cash = await connection.fetchval(CASH, environment, asset)
    positions = await fetch_positions(connection, environment)
    return await store_valuation(connection, environment, cash, positions, marks)


async def store_valuation(
    connection: Connection,
    environment: str,
    cash: Decimal,
    positions: Mapping[str, Position],
    marks: Mapping[str, Decimal],
) -> Decimal | None:
    """Store each position's mark (none: no usable quote now, and the risk manager falls back
    to its cost and the signal's price), then cash plus `positions` at `marks` as the account's
    equity; returns the equity. None, and no equity stored, when a position (beyond dust) has
    no mark: the stored equity then ages, and past MAX_EQUITY_AGE_SECONDS the risk manager lets
    no new exposure through (its breaker is not judged on a valuation the account never had)."""
    if positions:
        symbols = sorted(positions)
        await connection.execute(SET_MARKS, environment, symbols, [marks.get(s) for s in symbols])
    derived = derive_equity(cash, positions, marks)
    if derived is None:
        return None
    value, equity = derived
    await connection.execute(SET_EQUITY, environment, cash, value, equity)
    return equity

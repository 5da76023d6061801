"""Reading the whole trading record back from PostgreSQL and checking that it adds up.

What must hold after any run, crashes included: every signal decided exactly once; every
approved signal exactly one order, of the approved quantity, and every filled order exactly one
fill; replaying the fills in booking order from the starting cash never takes cash or a
position below zero and ends exactly at the stored balance and positions, nothing held back
once no order is open; the stored equity is cash plus every position at the mark it was valued
at, whenever it is looked at (`sample_equity`, where the marks stay put); and where the book
stays put, each fill is at its price and pays its fee (`check_fill_costs`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

import asyncpg

from tests.e2e.stack import query

TERMINAL = {"filled", "rejected", "cancelled"}
# A row as asyncpg returns it, or as decoded from psql's JSON (tests/node/test_trading.py)
Row = Mapping[str, Any] | asyncpg.Record


@dataclass(frozen=True)
class Books:
    decisions: Sequence[Row]
    orders: Sequence[Row]
    fills: Sequence[Row]
    cash: Decimal
    positions: dict[str, Decimal]
    equity: Row | None
    locked: Decimal = Decimal(0)  # of `cash`: what open orders hold back


async def read_books(url: str, asset: str = "USDT") -> Books:
    decisions = await query(url, "SELECT * FROM risk_decisions ORDER BY decided_at")
    orders = await query(url, "SELECT * FROM orders ORDER BY created_at")
    fills = await query(
        url, "SELECT f.*, o.side, o.symbol FROM fills f JOIN orders o USING (client_order_id) "
        "ORDER BY f.id",
    )  # fmt: skip
    cash = await query(
        url, "SELECT free + locked AS cash, locked FROM balances WHERE asset = $1", asset
    )
    positions = await query(url, "SELECT symbol, quantity FROM positions")
    equity = await query(url, "SELECT * FROM account_equity WHERE environment = 'paper'")
    return Books(
        decisions, orders, fills, cash[0]["cash"],
        {row["symbol"]: row["quantity"] for row in positions}, equity[0] if equity else None,
        cash[0]["locked"],
    )  # fmt: skip


async def settled(url: str, signal_ids: list[str]) -> bool | None:
    """True once every signal is decided and every approved order finished."""
    decided = await query(
        url, "SELECT client_order_id FROM risk_decisions WHERE signal_id = ANY($1)", signal_ids
    )
    if len(decided) < len(signal_ids):
        return None
    approved = [row["client_order_id"] for row in decided if row["client_order_id"]]
    done = await query(
        url, "SELECT count(*) AS n FROM orders WHERE client_order_id = ANY($1) "
        "AND status = ANY($2)", approved, list(TERMINAL),
    )  # fmt: skip
    return done[0]["n"] == len(approved) or None


def check_orders(books: Books, signal_ids: list[str]) -> list[str]:
    """Each signal decided once, each approved one exactly one order; the approved ids. (The
    tables' keys already refuse a second decision or order row for one id: what would show a
    doubled order is a second fill of it, checked here, and the ledger replay.)"""
    counts = Counter(row["signal_id"] for row in books.decisions)
    assert sorted(counts) == sorted(signal_ids), "a signal was lost or decided that was not sent"
    assert set(counts.values()) == {1}
    approved = {row["client_order_id"]: row for row in books.decisions if row["client_order_id"]}
    orders = Counter(row["client_order_id"] for row in books.orders)
    assert set(orders) == set(approved), "an approved signal has no order, or an order no signal"
    assert set(orders.values()) == {1}, "an order was doubled"
    for order in books.orders:
        assert order["quantity"] == approved[order["client_order_id"]]["approved_quantity"]
        assert order["status"] in TERMINAL
    fills = Counter(row["client_order_id"] for row in books.fills)
    filled = {row["client_order_id"] for row in books.orders if row["status"] == "filled"}
    assert set(fills) == filled and set(fills.values()) <= {1}, "a fill was lost or doubled"
    return sorted(approved)


def check_ledger(books: Books, start: Decimal) -> None:
    """Replay the fills: never below zero, ending exactly at the stored books."""
    cash, held = start, Counter[str]()
    for fill in books.fills:
        notional = fill["price"] * fill["quantity"]
        if fill["side"] == "buy":
            cash -= notional + fill["fee"]
            held[fill["symbol"]] += fill["quantity"]
        else:
            cash += notional - fill["fee"]
            held[fill["symbol"]] -= fill["quantity"]
        assert cash >= 0, f"cash went negative ({cash}) at fill {fill['id']}"
        assert held[fill["symbol"]] >= 0, f"{fill['symbol']} went short at fill {fill['id']}"
    assert cash == books.cash
    assert {s: q for s, q in held.items() if q} == {s: q for s, q in books.positions.items() if q}
    if all(order["status"] in TERMINAL for order in books.orders):
        assert books.locked == 0, f"{books.locked} held back with no order open"


def check_fill_costs(
    books: Books, bid: Decimal, ask: Decimal, fee_rate: Decimal, slippage: Decimal
) -> None:
    """Every fill traded against a book that stayed at `bid`/`ask`: a buy at the ask plus
    slippage, a sell at the bid less it (each rounded to 8 places against the trader), and a
    fee of `fee_rate` of the notional (rounded up to 8 places)."""
    step = Decimal("0.00000001")
    buy = (ask * (1 + slippage)).quantize(step, rounding=ROUND_UP)
    sell = (bid * (1 - slippage)).quantize(step, rounding=ROUND_DOWN)
    for fill in books.fills:
        price = buy if fill["side"] == "buy" else sell
        fee = (price * fill["quantity"] * fee_rate).quantize(step, rounding=ROUND_UP)
        assert (fill["price"], fill["fee"]) == (price, fee), f"fill {fill['id']}: {dict(fill)}"


def check_equity(books: Books, marks: dict[str, Decimal]) -> None:
    """Stored equity = cash + positions at `marks`, the marks it was valued at."""
    assert books.equity is not None, "the executor never stored an equity"
    value = sum((q * marks[s] for s, q in books.positions.items() if q), Decimal(0))
    assert books.equity["cash"] == books.cash
    assert books.equity["positions_value"] == value
    assert books.equity["equity"] == books.cash + value


# One snapshot of the books and the equity stored with them
SNAPSHOT = """
SELECT (SELECT free + locked FROM balances WHERE environment = 'paper' AND asset = 'USDT') AS cash,
       (SELECT json_object_agg(symbol, quantity::text) FROM positions
        WHERE environment = 'paper' AND quantity <> 0) AS positions,
       e.cash AS stored_cash, e.positions_value, e.equity
FROM account_equity e WHERE e.environment = 'paper'
"""


async def sample_equity(
    url: str, marks: dict[str, Decimal], stop: asyncio.Event, every: float = 0.05
) -> int:
    """Until `stop`, every `every` seconds, in one snapshot: the stored equity is the cash the
    books hold plus each position at `marks` (marks that stay put while this runs), however
    the executor is stopped and killed meanwhile. Returns how many snapshots held an equity."""
    sampled = 0
    connection = await asyncpg.connect(url)
    try:
        while not stop.is_set():
            async with connection.transaction(isolation="repeatable_read", readonly=True):
                row = await connection.fetchrow(SNAPSHOT)
            if row is not None:
                sampled += 1
                held = json.loads(row["positions"] or "{}")
                value = sum((Decimal(q) * marks[s] for s, q in held.items()), Decimal(0))
                seen = (row["stored_cash"], row["positions_value"], row["equity"])
                assert seen == (row["cash"], value, row["cash"] + value), (seen, dict(row))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
    finally:
        await connection.close()
    return sampled

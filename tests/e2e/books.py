"""Reading the whole trading record back from PostgreSQL and checking that it adds up.

What must hold after any run, crashes included: every signal decided exactly once; every
approved signal exactly one order, of the approved quantity, and every filled order exactly one
fill; replaying the fills in booking order from the starting cash never takes cash or a
position below zero and ends exactly at the stored balance and positions; the stored equity is
cash plus every position at the mark it was valued at.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
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


async def read_books(url: str, asset: str = "USDT") -> Books:
    decisions = await query(url, "SELECT * FROM risk_decisions ORDER BY decided_at")
    orders = await query(url, "SELECT * FROM orders ORDER BY created_at")
    fills = await query(
        url, "SELECT f.*, o.side, o.symbol FROM fills f JOIN orders o USING (client_order_id) "
        "ORDER BY f.id",
    )  # fmt: skip
    cash = await query(url, "SELECT free + locked AS cash FROM balances WHERE asset = $1", asset)
    positions = await query(url, "SELECT symbol, quantity FROM positions")
    equity = await query(url, "SELECT * FROM account_equity WHERE environment = 'paper'")
    return Books(
        decisions, orders, fills, cash[0]["cash"],
        {row["symbol"]: row["quantity"] for row in positions}, equity[0] if equity else None,
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
    """Each signal decided once, each approved one exactly one order; the approved ids."""
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


def check_equity(books: Books, marks: dict[str, Decimal]) -> None:
    """Stored equity = cash + positions at `marks`, the marks it was valued at."""
    assert books.equity is not None, "the executor never stored an equity"
    value = sum((q * marks[s] for s, q in books.positions.items() if q), Decimal(0))
    assert books.equity["cash"] == books.cash
    assert books.equity["positions_value"] == value
    assert books.equity["equity"] == books.cash + value

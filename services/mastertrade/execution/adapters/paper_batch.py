"""Paper orders executed in batches: one transaction, one Redis round trip, one write.

The orders of a batch are locked (in client order id order, so batches never deadlock), then the
balance, then every position (the books' lock order); the quotes and marks come in one Redis
pipeline; each order is then decided in arrival order against the running books in memory,
exactly as it would be alone (fill with `apply_fill`, rest a limit order with its reserve, or
reject with the reason), and one statement writes everything: balance, positions, fills, order
statuses, equity and the events. Orders already finished are skipped, so a redelivery or a
reconcile racing a consumer never fills twice; the fills' (order, fill id) key would refuse it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import asyncpg

from mastertrade.core.db import Connection, one
from mastertrade.core.messages import ApprovedOrder, OrderEvent
from mastertrade.core.outbox import LEASED_UNTIL, Written, mark_sent_cte, written_in_order
from mastertrade.execution.adapters.orders import TERMINAL, build_event, order_columns
from mastertrade.execution.domain.ledger import LedgerError, Position, apply_fill, derive_equity
from mastertrade.execution.domain.paper import (
    PaperFill,
    Quote,
    build_fill,
    crosses,
    reserve_for_buy,
)
from mastertrade_model.topology import ORDERS

# Records the batch's new orders, then locks in the books' order: the orders asked for (by client
# order id), the balance, the positions (migration 0030); returns the orders asked for.
RECORD_AND_LOCK = """
SELECT * FROM paper_record_and_lock($1, $2, $3::text[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::numeric[], $10::numeric[], $11::boolean[])
"""
# Read under the locks RECORD_AND_LOCK took: what it reads, no one else can change.
BOOKS = """
SELECT free, locked,
    ARRAY(SELECT symbol FROM positions WHERE environment = $1 ORDER BY symbol) AS symbols,
    ARRAY(SELECT quantity FROM positions WHERE environment = $1 ORDER BY symbol) AS quantities,
    ARRAY(SELECT average_price FROM positions WHERE environment = $1 ORDER BY symbol) AS prices
FROM balances WHERE environment = $1 AND asset = $2
"""
WRITE = f"""
WITH balance AS (
    UPDATE balances SET free = $3, locked = $4, updated_at = now()
    WHERE environment = $1 AND asset = $2
), position AS (
    INSERT INTO positions (environment, symbol, quantity, average_price)
    SELECT $1, symbol, quantity, average_price
    FROM unnest($5::text[], $6::numeric[], $7::numeric[]) AS p(symbol, quantity, average_price)
    ON CONFLICT (environment, symbol) DO UPDATE
    SET quantity = EXCLUDED.quantity, average_price = EXCLUDED.average_price, updated_at = now()
), fill AS (
    INSERT INTO fills (client_order_id, fill_id, price, quantity, fee, fee_asset)
    SELECT id, id || ':1', price, quantity, fee, $2
    FROM unnest($8::text[], $9::numeric[], $10::numeric[], $11::numeric[])
        AS f(id, price, quantity, fee)
), changed AS (
    UPDATE orders o SET status = u.status,
        filled_quantity = COALESCE(u.filled_quantity, o.filled_quantity),
        average_price = COALESCE(u.average_price, o.average_price),
        fee = COALESCE(u.fee, o.fee), reserved = u.reserved,
        reason = COALESCE(u.reason, o.reason), updated_at = now()
    FROM unnest($12::text[], $13::text[], $14::numeric[], $15::numeric[], $16::numeric[],
                $17::numeric[], $18::text[])
        AS u(id, status, filled_quantity, average_price, fee, reserved, reason)
    WHERE o.client_order_id = u.id
), equity AS (
    INSERT INTO account_equity (environment, cash, positions_value, equity)
    SELECT $1, $3::numeric + $4::numeric, $19, $20 WHERE $21::boolean
    ON CONFLICT (environment) DO UPDATE SET cash = EXCLUDED.cash,
        positions_value = EXCLUDED.positions_value, equity = EXCLUDED.equity, updated_at = now()
), {mark_sent_cte(25)}
INSERT INTO outbox (exchange, routing_key, payload, leased_until)
SELECT $22, routing_key, payload::jsonb, CASE WHEN $26::boolean THEN {LEASED_UNTIL} END
FROM unnest($23::text[], $24::text[]) WITH ORDINALITY AS e(routing_key, payload, position)
ORDER BY position
RETURNING id
"""


@dataclass
class RunningBooks:
    """The locked balance and positions as the batch's decisions change them, and the marks."""

    free: Decimal
    locked: Decimal
    held: dict[str, Position]
    marks: dict[str, Decimal]
    touched: set[str] = field(default_factory=set)
    fills: list[tuple[str, PaperFill]] = field(default_factory=list)
    updates: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[OrderEvent] = field(default_factory=list)

    def reject(self, order: asyncpg.Record, reason: str) -> None:
        self.updates.append((order["client_order_id"], "rejected", None, None, None,
                             Decimal(0), reason))  # fmt: skip
        self.events.append(build_event(order, "rejected", reason=reason))


@dataclass(frozen=True)
class Costs:
    fee_rate: Decimal
    slippage: Decimal
    quote_asset: str


def decide_order(
    order: asyncpg.Record, quote: Quote | str, books: RunningBooks, costs: Costs
) -> None:
    """One order against the running books: nothing, rest, fill or reject."""
    is_open = order["status"] == "submitted"
    if isinstance(quote, str):
        if not is_open:
            books.reject(order, quote)
        return
    limit = order["price"] if order["type"] == "limit" else None
    if limit is not None and not crosses(order["side"], limit, quote):
        if not is_open:
            rest(order, books, costs)
        return
    fill(order, quote, limit, books, costs)


def rest(order: asyncpg.Record, books: RunningBooks, costs: Costs) -> None:
    """Rest a limit order; a buy holds back its most expensive cost."""
    reserve = Decimal(0)
    if order["side"] == "buy":
        reserve = reserve_for_buy(order["quantity"], order["price"], costs.fee_rate)
        if reserve > books.free:
            books.reject(order, f"insufficient {costs.quote_asset} balance: the limit order "
                                f"holds {reserve}, {books.free} is available")  # fmt: skip
            return
        books.free, books.locked = books.free - reserve, books.locked + reserve
    books.updates.append((order["client_order_id"], "submitted", None, None, None, reserve,
                          None))  # fmt: skip
    books.events.append(build_event(order, "submitted"))


def fill(
    order: asyncpg.Record, quote: Quote, limit: Decimal | None, books: RunningBooks, costs: Costs
) -> None:
    symbol, reserved = order["symbol"], order["reserved"]
    done = build_fill(order["side"], order["quantity"], quote, (costs.fee_rate, costs.slippage),
                      limit)  # fmt: skip
    position = books.held.get(symbol, Position())
    try:
        cash, position = apply_fill(books.free + reserved, position, done, symbol,
                                    costs.quote_asset)  # fmt: skip
    except LedgerError as error:
        books.free, books.locked = books.free + reserved, books.locked - reserved
        books.reject(order, str(error))
        return
    books.free, books.locked = cash, books.locked - reserved
    books.held[symbol] = position
    books.touched.add(symbol)
    books.marks[symbol] = (quote.bid + quote.ask) / 2
    books.fills.append((order["client_order_id"], done))
    books.updates.append((order["client_order_id"], "filled", done.quantity, done.price,
                          done.fee, Decimal(0), None))  # fmt: skip
    books.events.append(build_event(order, "filled", filled_quantity=done.quantity,
                                    average_price=done.price, fee=done.fee))  # fmt: skip


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


async def write_books(
    connection: Connection,
    environment: str,
    asset: str,
    books: RunningBooks,
    *,
    sent: Sequence[int] = (),
    leased: bool = False,
) -> list[Written]:
    """Everything the batch changed, in one statement, with the outbox rows `sent` marked; the
    events' outbox rows (`leased`: to this process, which sends them itself), as (id, event).
    """
    positions = [(s, books.held[s].quantity, books.held[s].average_price) for s in books.touched]
    fills = [(cid, f.price, f.quantity, f.fee) for cid, f in books.fills]
    value, equity = derive_equity(books.free + books.locked, books.held, books.marks)
    events = [(ORDERS.name, f"order.{e.status}", e.to_json()) for e in books.events]
    rows = await connection.fetch(
        WRITE, environment, asset, books.free, books.locked, *_columns(positions, 3),
        *_columns(fills, 4), *_columns(books.updates, 7), value, equity, bool(books.fills),
        ORDERS.name, [key for _, key, _ in events], [json.dumps(body) for _, _, body in events],
        list(sent), leased,
    )  # fmt: skip
    return written_in_order(rows, events)


async def record_and_lock(
    connection: Connection,
    environment: str,
    asset: str,
    wanted: Sequence[str],
    new: Sequence[ApprovedOrder] = (),
) -> list[asyncpg.Record]:
    """Record the `new` orders (those known already are left), lock the `wanted` ones, then the
    balance and the positions, in one round trip; the wanted orders found. Inserts and locks both
    go in client order id order: two replicas given the same redelivered orders never wait on
    each other in opposite orders."""
    new = sorted(new, key=lambda order: order.client_order_id)
    return await connection.fetch(
        RECORD_AND_LOCK, environment, asset, sorted(wanted), *order_columns(new)
    )


async def read_books(
    connection: Connection, environment: str, asset: str
) -> tuple[Decimal, Decimal, dict[str, Position]]:
    """The balance (free, locked) and the positions, under the locks `record_and_lock` took."""
    row = one(await connection.fetchrow(BOOKS, environment, asset), f"{asset} balance")
    positions = zip(row["symbols"], row["quantities"], row["prices"], strict=True)
    return row["free"], row["locked"], {s: Position(q, p) for s, q, p in positions}


def lockable(orders: Sequence[asyncpg.Record], wanted: Sequence[str]) -> list[asyncpg.Record]:
    """The unfinished orders among the locked ones, in the order they were asked for."""
    by_id = {order["client_order_id"]: order for order in orders}
    return [
        by_id[cid]
        for cid in dict.fromkeys(wanted)
        if cid in by_id and by_id[cid]["status"] not in TERMINAL
    ]

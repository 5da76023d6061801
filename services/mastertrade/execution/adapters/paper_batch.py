"""Paper orders executed in batches: one read, one Redis round trip, one write, no lock held.

One statement reads, in one snapshot, the orders asked for that are recorded already, the
balance with its version, every position and what the resting limit sells hold back of each
(`READ`); the quotes and marks come in one Redis pipeline; each order is then decided in arrival
order against the running books in memory, exactly as it would be alone (fill with
`apply_fill`, rest a limit order with its reserve, or reject with the reason: an order approved
over APPROVAL_LIFETIME_SECONDS ago is not executed at all (`stale_approval`), a buy needs the
cash, a sell the coins held and not held back by resting sells, as the exchange locks them;
while the risk manager's circuit breaker is on, read in the same snapshot, a buy is
rejected, or cancelled if it rests, releasing its reserve, and while its kill switch is on any
order is: see domain/halt.py), and
one statement writes everything: the new orders (a paper order is sent nowhere, so it is
recorded with its outcome, in the statement that commits it), balance, positions, fills, order
statuses, equity and the events (`WRITE`), only if the balance's version is still the one read.
Every paper batch bumps it, so when another batch (a replica, a reconcile racing a consumer)
wrote first, this one writes nothing and is decided again on what that one left: orders
already finished are skipped, so nothing fills twice; the orders' key and the fills' (order,
fill id) key would refuse it. A batch that fills or rests a buy also writes only if no halt
came on since its read, and one that fills or rests anything only if the kill switch did not
(the risk manager's changes do not touch the balance): else it is decided again, and the new
read sees the halt.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from mastertrade.core.amounts import exact_arithmetic, exactly
from mastertrade.core.db import Connection, one
from mastertrade.core.messages import (
    ApprovedOrder,
    OrderEvent,
    not_quoted_reason,
    stale_approval,
)
from mastertrade.core.outbox import LEASED_UNTIL, Written, mark_sent_cte, written_in_order
from mastertrade.execution.adapters.orders import TERMINAL, build_event, order_columns
from mastertrade.execution.domain.halt import blocks, halt_reason
from mastertrade.execution.domain.ledger import LedgerError, Position, apply_fill, derive_equity
from mastertrade.execution.domain.paper import (
    PaperFill,
    Quote,
    build_fill,
    crosses,
    reserve_for_buy,
)
from mastertrade.execution.domain.price_guard import runaway_price
from mastertrade_model.topology import ORDERS

Order = Mapping[str, Any]
"""An order as its row reads (or would read, for one not recorded yet)."""

# Writes nothing, so it needs no commit of its own (migration 0031: the balance's version).
READ = """
SELECT
    ARRAY(SELECT o FROM orders o WHERE o.client_order_id = ANY($3::text[])) AS batch_orders,
    b.free, b.locked, b.version,
    ARRAY(SELECT symbol FROM positions WHERE environment = $1 ORDER BY symbol) AS symbols,
    ARRAY(SELECT quantity FROM positions WHERE environment = $1 ORDER BY symbol) AS quantities,
    ARRAY(SELECT average_price FROM positions WHERE environment = $1 ORDER BY symbol) AS prices,
    ARRAY(SELECT symbol FROM orders WHERE environment = $1 AND status = 'submitted'
          AND side = 'sell' GROUP BY symbol ORDER BY symbol) AS selling_symbols,
    ARRAY(SELECT sum(quantity - filled_quantity) FROM orders WHERE environment = $1
          AND status = 'submitted' AND side = 'sell' GROUP BY symbol ORDER BY symbol) AS selling,
    r.breaker_open, r.kill_switch
FROM balances b LEFT JOIN risk_state r ON r.environment = b.environment
WHERE b.environment = $1 AND b.asset = $2
"""
# Everything, only if the balance's version is still `$27` (`balance` bumps it, or returns no row
# and every other part reads as empty): no row returned means another batch came first, or a
# halt came on since the read that stops what the batch does (the breaker, when it adds
# exposure, `$37`: it fills or rests a buy; the kill switch, when it trades at all, `$38`: it
# fills or rests any order);
# either way the batch is decided again, on a read that sees what changed. A batch
# that changed anything has an event for each change, so it returns a row when it wrote. The
# orders not recorded yet (`$28`-`$36`) are inserted with their outcome (or as `new`, for the
# reconcile, should one have none).
WRITE = f"""
WITH balance AS (
    UPDATE balances SET free = $3, locked = $4, version = version + 1, updated_at = now()
    WHERE environment = $1 AND asset = $2 AND version = $27
      AND NOT EXISTS (SELECT FROM risk_state r
                      WHERE r.environment = $1 AND (r.kill_switch AND $38::boolean
                                                    OR r.breaker_open AND $37::boolean))
    RETURNING version
), updates AS (
    SELECT * FROM unnest($12::text[], $13::text[], $14::numeric[], $15::numeric[],
                         $16::numeric[], $17::numeric[], $18::text[])
        AS u(id, status, filled_quantity, average_price, fee, reserved, reason)
    WHERE EXISTS (SELECT FROM balance)
), recorded AS (
    INSERT INTO orders (client_order_id, signal_ref, symbol, side, type, quantity, price,
        reduce_only, approved_at, environment, status, filled_quantity, average_price, fee,
        reserved, reason)
    SELECT n.id, n.signal_ref, n.symbol, n.side, n.type, n.quantity, n.price, n.reduce_only,
        n.approved_at, $1, COALESCE(u.status, 'new'), COALESCE(u.filled_quantity, 0),
        u.average_price, COALESCE(u.fee, 0), COALESCE(u.reserved, 0), u.reason
    FROM unnest($28::text[], $29::text[], $30::text[], $31::text[], $32::text[],
                $33::numeric[], $34::numeric[], $35::boolean[], $36::timestamptz[])
        AS n(id, signal_ref, symbol, side, type, quantity, price, reduce_only, approved_at)
    LEFT JOIN updates u ON u.id = n.id
    WHERE EXISTS (SELECT FROM balance)
), position AS (
    INSERT INTO positions (environment, symbol, quantity, average_price)
    SELECT $1, symbol, quantity, average_price
    FROM unnest($5::text[], $6::numeric[], $7::numeric[]) AS p(symbol, quantity, average_price)
    WHERE EXISTS (SELECT FROM balance)
    ON CONFLICT (environment, symbol) DO UPDATE
    SET quantity = EXCLUDED.quantity, average_price = EXCLUDED.average_price, updated_at = now()
), fill AS (
    INSERT INTO fills (client_order_id, fill_id, price, quantity, fee, fee_asset)
    SELECT id, id || ':1', price, quantity, fee, $2
    FROM unnest($8::text[], $9::numeric[], $10::numeric[], $11::numeric[])
        AS f(id, price, quantity, fee)
    WHERE EXISTS (SELECT FROM balance)
), changed AS (
    UPDATE orders o SET status = u.status,
        filled_quantity = COALESCE(u.filled_quantity, o.filled_quantity),
        average_price = COALESCE(u.average_price, o.average_price),
        fee = COALESCE(u.fee, o.fee), reserved = u.reserved,
        reason = COALESCE(u.reason, o.reason), updated_at = now()
    FROM updates u WHERE o.client_order_id = u.id
), equity AS (
    INSERT INTO account_equity (environment, cash, positions_value, equity)
    SELECT $1, $3::numeric + $4::numeric, $19, $20
    WHERE $21::boolean AND EXISTS (SELECT FROM balance)
    ON CONFLICT (environment) DO UPDATE SET cash = EXCLUDED.cash,
        positions_value = EXCLUDED.positions_value, equity = EXCLUDED.equity, updated_at = now()
), {mark_sent_cte(25)}
INSERT INTO outbox (exchange, routing_key, payload, leased_until)
SELECT $22, routing_key, payload::jsonb, CASE WHEN $26::boolean THEN {LEASED_UNTIL} END
FROM unnest($23::text[], $24::text[]) WITH ORDINALITY AS e(routing_key, payload, position)
WHERE EXISTS (SELECT FROM balance)
ORDER BY position
RETURNING id
"""


@dataclass
class RunningBooks:
    """The balance and positions read as the batch's decisions change them, and the marks."""

    free: Decimal
    locked: Decimal
    held: dict[str, Position]
    marks: dict[str, Decimal]
    selling: dict[str, Decimal] = field(default_factory=dict)  # held back by resting sells
    halted: str | None = None  # why orders are halted now, if they are (domain/halt.py)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))  # the approvals' age
    buying: bool = False  # a buy filled or rested: the write checks no halt came on meanwhile
    trading: bool = False  # any order filled or rested: the write checks the kill switch
    touched: set[str] = field(default_factory=set)
    fills: list[tuple[str, PaperFill]] = field(default_factory=list)
    updates: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[OrderEvent] = field(default_factory=list)

    def reject(self, order: Order, reason: str) -> None:
        self.updates.append((order["client_order_id"], "rejected", None, None, None,
                             Decimal(0), reason))  # fmt: skip
        self.events.append(build_event(order, "rejected", reason=reason))

    @exactly
    def cancel(self, order: Order, reason: str) -> None:
        """Cancel a resting order, releasing what it holds back."""
        reserved = order["reserved"]
        self.free, self.locked = self.free + reserved, self.locked - reserved
        if order["side"] == "sell":
            symbol = order["symbol"]
            self.selling[symbol] = self.selling.get(symbol, Decimal(0)) - order["quantity"]
        self.updates.append((order["client_order_id"], "cancelled", None, None, None,
                             Decimal(0), reason))  # fmt: skip
        self.events.append(build_event(order, "cancelled", reason=reason))

    @exactly
    def unsellable(self, order: Order) -> str | None:
        """Why the sell cannot have its coins (held less held back by resting sells), if so."""
        symbol, quantity = order["symbol"], order["quantity"]
        held = self.held.get(symbol, Position()).quantity
        holding = self.selling.get(symbol, Decimal(0))
        if quantity <= held - holding:
            return None
        return (f"insufficient {symbol} position: the sell needs {quantity}, "
                f"{max(held - holding, Decimal(0))} is free ({held} held, {holding} held back "
                "by resting sells)")  # fmt: skip


@dataclass(frozen=True)
class Costs:
    fee_rate: Decimal
    slippage: Decimal
    quote_asset: str
    max_price_deviation: Decimal = Decimal(0)  # domain/price_guard.py; 0: off


def decide_order(order: Order, quote: Quote | str, books: RunningBooks, costs: Costs) -> None:
    """One order against the running books: nothing, rest, fill, reject or cancel."""
    is_open = order["status"] == "submitted"
    approved_at = order["approved_at"] or order.get("created_at")  # before 0039: recorded
    if order["status"] == "new" and (reason := stale_approval(approved_at, books.now)):
        books.reject(order, f"not filled: {reason}")
        return
    if reason := not_quoted_reason(order["symbol"], order["side"], costs.quote_asset):
        # one resting from before the check is cancelled, releasing what it holds back
        (books.cancel if is_open else books.reject)(order, f"not filled: {reason}")
        return
    if blocks(order["side"], books.halted):
        (books.cancel if is_open else books.reject)(order, books.halted or "")
        return
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


@exactly  # what is held back and released adds up to what was read
def rest(order: Order, books: RunningBooks, costs: Costs) -> None:
    """Rest a limit order; a buy holds back its most expensive cost, a sell its coins."""
    reserve = Decimal(0)
    if order["side"] == "sell":
        if reason := books.unsellable(order):
            books.reject(order, reason)
            return
        symbol = order["symbol"]
        books.selling[symbol] = books.selling.get(symbol, Decimal(0)) + order["quantity"]
    else:
        reserve = reserve_for_buy(order["quantity"], order["price"], costs.fee_rate)
        if reserve > books.free:
            books.reject(order, f"insufficient {costs.quote_asset} balance: the limit order "
                                f"holds {reserve}, {books.free} is available")  # fmt: skip
            return
        books.free, books.locked = books.free - reserve, books.locked + reserve
        books.buying = True
    books.trading = True
    books.updates.append((order["client_order_id"], "submitted", None, None, None, reserve,
                          None))  # fmt: skip
    books.events.append(build_event(order, "submitted"))


@exactly
def fill(
    order: Order, quote: Quote, limit: Decimal | None, books: RunningBooks, costs: Costs
) -> None:
    """Fill the order (a resting one at its limit), or reject it releasing what it held."""
    symbol, reserved, resting = order["symbol"], order["reserved"], order["status"] == "submitted"
    books.free, books.locked = books.free + reserved, books.locked - reserved
    selling = order["side"] == "sell"
    if resting and selling:  # its coins are no longer held back: they go
        books.selling[symbol] = books.selling.get(symbol, Decimal(0)) - order["quantity"]
    try:
        if selling and books.selling.get(symbol) and (reason := books.unsellable(order)):
            raise LedgerError(reason)  # coins the resting sells hold back (else apply_fill says)
        done = build_fill(order["side"], order["quantity"], quote,
                          (costs.fee_rate, costs.slippage), limit, resting=resting)  # fmt: skip
        if reason := runaway_price(order["side"], order["type"], order["price"], done.price,
                                   costs.max_price_deviation):  # fmt: skip
            raise LedgerError(reason)
        position = books.held.get(symbol, Position())
        cash, position = apply_fill(books.free, position, done, symbol, costs.quote_asset)
    except ValueError as error:  # LedgerError, or no price to sell at
        books.reject(order, str(error))
        return
    books.free = cash
    books.buying = books.buying or not selling
    books.trading = True
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
    read: BooksRead,
    *,
    sent: Sequence[int] = (),
    leased: bool = False,
) -> list[Written] | None:
    """Everything the batch changed since `read`, its orders not recorded before included, in
    one statement, with the outbox rows `sent` marked; the events' outbox rows (`leased`: to
    this process, which sends them itself), as (id, event). None, and nothing written but the
    marks, when another batch changed the books first or, if it buys, a halt came on."""
    positions = [(s, books.held[s].quantity, books.held[s].average_price) for s in books.touched]
    fills = [(cid, f.price, f.quantity, f.fee) for cid, f in books.fills]
    # no equity stored while a position has no mark (ledger.derive_equity): it ages instead
    with exact_arithmetic():  # the cash PostgreSQL stores is this exact sum
        valued = derive_equity(books.free + books.locked, books.held, books.marks)
    value, equity = valued or (Decimal(0), Decimal(0))
    events = [(ORDERS.name, f"order.{e.status}", e.to_json()) for e in books.events]
    rows = await connection.fetch(
        WRITE, environment, asset, books.free, books.locked, *_columns(positions, 3),
        *_columns(fills, 4), *_columns(books.updates, 7), value, equity,
        bool(books.fills) and valued is not None,
        ORDERS.name, [key for _, key, _ in events], [json.dumps(body) for _, _, body in events],
        list(sent), leased, read.version, *order_columns(read.unrecorded), books.buying,
        books.trading,
    )  # fmt: skip
    return written_in_order(rows, events) if rows else None


@dataclass(frozen=True)
class BooksRead:
    """What a batch is decided on: its unfinished orders, in the order asked for (those not
    recorded yet among them, as `new`), and the books (balance with its version, positions) and
    the risk manager's halt, if any, of the same snapshot."""

    orders: list[Order]
    unrecorded: list[ApprovedOrder]
    version: int
    free: Decimal
    locked: Decimal
    held: dict[str, Position]
    selling: dict[str, Decimal] = field(default_factory=dict)
    halted: str | None = None


async def read_books(
    connection: Connection,
    environment: str,
    asset: str,
    wanted: Sequence[str],
    new: Sequence[ApprovedOrder] = (),
) -> BooksRead:
    """The `wanted` orders and the books, in one round trip that writes nothing; the orders of
    `new` that are not recorded yet are decided as `new` and recorded by the write."""
    row = await connection.fetchrow(READ, environment, asset, list(wanted))
    row = one(row, f"{asset} balance")
    found: dict[str, Order] = {order["client_order_id"]: order for order in row["batch_orders"]}
    unique = {order.client_order_id: order for order in new}
    unrecorded = [order for cid, order in unique.items() if cid not in found]
    for order in unrecorded:
        found[order.client_order_id] = unrecorded_row(order, environment)
    positions = zip(row["symbols"], row["quantities"], row["prices"], strict=True)
    return BooksRead(
        unfinished(found, wanted), unrecorded, row["version"], row["free"], row["locked"],
        {s: Position(q, p) for s, q, p in positions},
        dict(zip(row["selling_symbols"], row["selling"], strict=True)),
        halt_reason(row["breaker_open"], row["kill_switch"]),
    )  # fmt: skip


def unrecorded_row(order: ApprovedOrder, environment: str) -> Order:
    """The row an approved order gets when it is recorded (`new`, nothing filled or held)."""
    return {
        "client_order_id": order.client_order_id, "signal_ref": order.signal_id,
        "symbol": order.symbol, "side": order.side, "type": order.order_type,
        "quantity": order.quantity, "price": order.recorded_price,
        "reduce_only": order.reduce_only, "approved_at": order.approved_at,
        "environment": environment, "status": "new",
        "filled_quantity": Decimal(0), "average_price": None, "fee": Decimal(0),
        "reserved": Decimal(0), "reason": None,
    }  # fmt: skip


def unfinished(found: Mapping[str, Order], wanted: Sequence[str]) -> list[Order]:
    """The unfinished orders among those found, in the order they were asked for."""
    return [
        found[cid]
        for cid in dict.fromkeys(wanted)
        if cid in found and found[cid]["status"] not in TERMINAL
    ]

"""Orders in PostgreSQL: recorded once by client order id, before anything is sent or filled.

`record_order` inserts the approved order with status `new` and commits: from then on a crash
loses nothing (start-up reconciles every order still `new` or `submitted`), and a redelivered
message finds the row and never creates a second order. Terminal statuses are final.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from mastertrade.core.db import Connection
from mastertrade.core.messages import ApprovedOrder, OrderEvent
from mastertrade.core.outbox import add_to_outbox
from mastertrade_model.topology import ORDERS

TERMINAL = frozenset({"filled", "rejected", "cancelled"})

RECORD = """
INSERT INTO orders (client_order_id, signal_ref, symbol, side, type, quantity, price,
    reduce_only, approved_at, environment)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (client_order_id) DO NOTHING
"""
LOCK = "SELECT * FROM orders WHERE client_order_id = $1 FOR UPDATE"
# `new` orders younger than $3 seconds are being handled by a consumer right now: the loop
# leaves them alone (it would only queue behind the same row locks). The statuses asked for ($2)
# are some of those in flight; the index of the orders in flight (migration 0032) covers them
# all, and its predicate is spelled out so that a generic plan, which cannot see $2, uses it.
IN_FLIGHT = """
SELECT client_order_id FROM orders WHERE environment = $1 AND status = ANY($2::text[])
  AND status IN ('new', 'submitted', 'partially_filled')
  AND (status <> 'new' OR updated_at < now() - make_interval(secs => $3))
ORDER BY created_at
"""
REJECT = """
UPDATE orders SET status = 'rejected', reason = $2, reserved = 0, updated_at = now()
WHERE client_order_id = $1
"""
LIST = """
SELECT client_order_id, exchange_order_id, symbol, side, type, quantity, price, status,
       filled_quantity, average_price, fee, reason, environment, created_at, updated_at
FROM orders WHERE environment = $1 ORDER BY created_at DESC LIMIT $2
"""


async def record_order(pool: asyncpg.Pool, order: ApprovedOrder, environment: str) -> bool:
    """Store the order as `new` (committed); False when it was already there."""
    status = await pool.execute(RECORD, *(column[0] for column in order_columns([order])),
                                environment)  # fmt: skip
    return bool(status.endswith(" 1"))


def order_columns(orders: Sequence[ApprovedOrder]) -> list[list[Any]]:
    """The orders as the arrays of their `new` rows: client order id, signal, symbol, side, type,
    quantity, price (`recorded_price`), reduce only, approval time."""
    return [
        [getattr(order, name) for order in orders]
        for name in ("client_order_id", "signal_id", "symbol", "side", "order_type", "quantity",
                     "recorded_price", "reduce_only", "approved_at")
    ]  # fmt: skip


async def lock_order(connection: Connection, client_order_id: str) -> asyncpg.Record | None:
    return await connection.fetchrow(LOCK, client_order_id)


async def fetch_in_flight(
    db: asyncpg.Pool | Connection, environment: str, statuses: list[str], min_age: float = 0.0
) -> list[str]:
    rows = await db.fetch(IN_FLIGHT, environment, statuses, min_age)
    return [row["client_order_id"] for row in rows]


def build_event(
    order: asyncpg.Record | Mapping[str, Any], status: str, **changes: Any
) -> OrderEvent:
    """The event announcing an order's new status, from its row and what just changed."""
    values = {
        "client_order_id": order["client_order_id"], "symbol": order["symbol"],
        "side": order["side"], "status": status, "environment": order["environment"],
        "quantity": order["quantity"], "filled_quantity": order["filled_quantity"],
        "average_price": order["average_price"], "fee": order["fee"], "reason": order["reason"],
    }  # fmt: skip
    return OrderEvent.model_validate(values | changes)


async def announce(connection: Connection, event: OrderEvent) -> None:
    """Queue `order.<status>` in the outbox of the caller's transaction."""
    await add_to_outbox(connection, ORDERS.name, f"order.{event.status}", event.to_json())


async def reject_order(connection: Connection, order: asyncpg.Record, reason: str) -> OrderEvent:
    """Mark the (locked) order rejected and queue its event."""
    await connection.execute(REJECT, order["client_order_id"], reason)
    event = build_event(order, "rejected", reason=reason)
    await announce(connection, event)
    return event


async def fetch_orders(pool: asyncpg.Pool, environment: str, limit: int) -> list[dict[str, Any]]:
    return [dict(row) for row in await pool.fetch(LIST, environment, limit)]

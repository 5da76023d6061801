"""Read-only routes of order_executor: the account, orders, fills."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from mastertrade.core.deps import RuntimeDep
from mastertrade.core.messages import Identifier
from mastertrade.execution.adapters.orders import fetch_orders
from mastertrade.execution.settings import ExecutionSettings

router = APIRouter(prefix="/api/v1", tags=["orders"])

ACCOUNT = """
SELECT (SELECT json_agg(json_build_object('asset', asset, 'free', free::text,
            'locked', locked::text)) FROM balances WHERE environment = $1) AS balances,
       (SELECT json_agg(json_build_object('symbol', symbol, 'quantity', quantity::text,
            'average_price', average_price::text)) FROM positions
        WHERE environment = $1 AND quantity > 0) AS positions,
       (SELECT row_to_json(e) FROM (SELECT cash::text, positions_value::text, equity::text,
            updated_at FROM account_equity WHERE environment = $1) e) AS equity
"""
FILLS = """
SELECT fill_id, price, quantity, fee, fee_asset, filled_at FROM fills
WHERE client_order_id = $1 ORDER BY id
"""


def _json(text: str | None, empty: Any) -> Any:
    return empty if text is None else json.loads(text)


def _environment(request: Request) -> str:
    settings: ExecutionSettings = request.app.state.settings
    return settings.trading_environment


@router.get("/account")
async def account(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """The environment, balances, open positions and the last equity valuation."""
    settings: ExecutionSettings = request.app.state.settings
    row = await runtime.pool.fetchrow(ACCOUNT, settings.trading_environment)
    assert row is not None
    return {
        "environment": settings.trading_environment,
        "paper_initial_balance": settings.paper_trading_initial_balance,
        "balances": _json(row["balances"], []),
        "positions": _json(row["positions"], []),
        "equity": _json(row["equity"], None),
    }


@router.get("/orders")
async def orders(
    request: Request, runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict[str, Any]]:
    """The latest orders, by client order id."""
    return await fetch_orders(runtime.pool, _environment(request), limit)


@router.get("/orders/{client_order_id}/fills")
async def fills(client_order_id: Identifier, runtime: RuntimeDep) -> list[dict[str, Any]]:
    """The fills of one order."""
    rows = await runtime.pool.fetch(FILLS, client_order_id)
    if (
        not rows
        and await runtime.pool.fetchval(
            "SELECT 1 FROM orders WHERE client_order_id = $1", client_order_id
        )
        is None
    ):
        raise HTTPException(404, f"no order {client_order_id!r}")
    return [dict(row) for row in rows]

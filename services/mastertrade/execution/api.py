"""HTTP routes of order_executor."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from mastertrade.core.deps import RuntimeDep
from mastertrade.execution.settings import ExecutionSettings

router = APIRouter(prefix="/api/v1", tags=["orders"])

ORDERS_QUERY = """
SELECT client_order_id, symbol, side, type, quantity, price, status, environment, created_at
FROM orders ORDER BY created_at DESC LIMIT $1
"""


@router.get("/account")
async def account(request: Request) -> dict[str, Any]:
    """The trading environment and the paper account's starting balance."""
    settings: ExecutionSettings = request.app.state.settings
    return {
        "environment": settings.trading_environment,
        "paper_initial_balance": settings.paper_trading_initial_balance,
    }


@router.get("/orders")
async def orders(
    runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict[str, Any]]:
    """The latest orders, by client order id."""
    rows = await runtime.pool.fetch(ORDERS_QUERY, limit)
    return [dict(row) for row in rows]

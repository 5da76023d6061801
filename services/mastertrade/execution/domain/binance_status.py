"""Binance's order answers read into the executor's terms: status, fills, averages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from mastertrade.core.messages import quoted_in

STATUSES = {
    "NEW": "submitted", "PENDING_NEW": "submitted", "PARTIALLY_FILLED": "partially_filled",
    "FILLED": "filled", "CANCELED": "cancelled", "PENDING_CANCEL": "submitted",
    "REJECTED": "rejected", "EXPIRED": "cancelled", "EXPIRED_IN_MATCH": "cancelled",
}  # fmt: skip


@dataclass(frozen=True)
class Trade:
    trade_id: str
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_asset: str


@dataclass(frozen=True)
class OrderState:
    exchange_order_id: str
    status: str
    filled_quantity: Decimal
    average_price: Decimal | None


def parse_order(body: Mapping[str, Any]) -> OrderState:
    """From a POST or GET /api/v3/order answer."""
    executed = Decimal(str(body.get("executedQty", "0")))
    quote = Decimal(str(body.get("cummulativeQuoteQty", "0")))
    average = quote / executed if executed > 0 else None
    status = STATUSES.get(str(body.get("status")), "submitted")
    return OrderState(str(body.get("orderId", "")), status, executed, average)


def parse_fill(item: Mapping[str, Any]) -> Trade:
    """From an entry of a FULL answer's `fills` or of /api/v3/myTrades."""
    return Trade(
        trade_id=str(item.get("tradeId", item.get("id"))), price=Decimal(str(item["price"])),
        quantity=Decimal(str(item["qty"])), fee=Decimal(str(item.get("commission", "0"))),
        fee_asset=str(item.get("commissionAsset", "")),
    )  # fmt: skip


def parse_execution_report(event: Mapping[str, Any]) -> tuple[str, OrderState, Trade | None]:
    """(client order id, state, the trade if this report is one) of a user-data
    `executionReport`; a cancel's report carries the original id in `C`."""
    client_order_id = str(event.get("C") or event["c"])
    executed = Decimal(str(event.get("z", "0")))
    quote = Decimal(str(event.get("Z", "0")))
    state = OrderState(
        str(event.get("i", "")), STATUSES.get(str(event.get("X")), "submitted"), executed,
        quote / executed if executed > 0 else None,
    )  # fmt: skip
    trade = None
    if event.get("x") == "TRADE":
        trade = Trade(str(event["t"]), Decimal(str(event["L"])), Decimal(str(event["l"])),
                      Decimal(str(event.get("n") or "0")), str(event.get("N") or ""))  # fmt: skip
    return client_order_id, state, trade


def base_asset(symbol: str, quote_asset: str) -> str:
    """The coin a symbol trades against the account's quote asset (BTC of BTCUSDT); "" when
    the symbol is not quoted in it."""
    return symbol.removesuffix(quote_asset) if quoted_in(symbol, quote_asset) else ""

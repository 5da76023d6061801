"""Binance's order answers read into the executor's terms: status, fills, averages.

Every number Binance sends is read as an exact Decimal and checked before anything is booked
(finite, within the platform's amount bounds, never negative; prices and traded quantities
positive), and every id is an integer: an answer that fails is refused whole, never half-booked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from mastertrade.core.amounts import AMOUNT_FLOOR, AMOUNT_LIMIT, AmountError, check_finite_amount
from mastertrade.core.messages import quoted_in

FEE_ASSETS = ("BNB",)
"""The assets Binance takes a commission in besides a trade's own two: BNB, when the account's
"use BNB for fees" is on (a quarter off). The live books value them as they value a traded
coin: held, at the mark of their quote (`fee_symbols`), whether or not MasterTrade trades them."""

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


class BinanceAnswerError(ValueError):
    """An answer of Binance's that cannot be booked as it is: a field missing, not a number,
    not finite, negative, or out of MasterTrade's amount bounds. Nothing of it is booked; the
    order's outcome is then unknown and is asked again (GET /api/v3/order, the poll)."""


def _field(body: Any, key: str) -> Any:
    if not isinstance(body, Mapping):
        raise BinanceAnswerError(f"Binance's answer is not a JSON object: {str(body)[:200]!r}")
    return body.get(key)


def read_amount(body: Any, key: str, *, positive: bool = False) -> Decimal:
    """`body[key]` as an exact Decimal: finite, within the platform's amount bounds, not
    negative (and, when `positive`, not zero); else a BinanceAnswerError naming the field and
    what Binance sent."""
    raw = _field(body, key)
    if raw is None or isinstance(raw, bool):
        raise BinanceAnswerError(f"{key!r} is missing from Binance's answer (got {raw!r})")
    try:
        value = Decimal(str(raw))
    except ArithmeticError:
        raise BinanceAnswerError(f"{key!r} of Binance's answer is {raw!r}, not a number") from None
    if not value.is_finite():
        raise BinanceAnswerError(f"{key!r} of Binance's answer is {raw!r}, not a finite number")
    try:
        check_finite_amount(value)
    except AmountError:
        raise BinanceAnswerError(
            f"{key!r} of Binance's answer is {raw!r}, outside the amounts MasterTrade books "
            f"({AMOUNT_FLOOR:e} to {AMOUNT_LIMIT:e}, or 0)"
        ) from None
    if value < 0 or (positive and value == 0):
        expected = "positive" if positive else "zero or more"
        raise BinanceAnswerError(f"{key!r} of Binance's answer is {raw!r}, not {expected}")
    return value


def read_id(body: Any, *keys: str) -> str:
    """The first of `keys` present, as the integer id Binance gives orders and trades."""
    raw = next((_field(body, key) for key in keys if _field(body, key) is not None), None)
    text = str(raw)
    if isinstance(raw, bool) or not (text.isascii() and text.isdecimal()):
        raise BinanceAnswerError(f"{'/'.join(keys)!r} of Binance's answer is {raw!r}, not an id")
    return str(int(text))


def _state(order_id: str, status: Any, executed: Decimal, quote: Decimal) -> OrderState:
    """An order's state from its cumulative quantity and quote; its average price checked like
    any amount (a tiny quantity beside a large quote would make an absurd one)."""
    average = None
    if executed > 0:
        if quote <= 0:
            raise BinanceAnswerError(f"Binance reports {executed} filled for a quote of {quote}")
        try:
            average = check_finite_amount(quote / executed)
        except (ArithmeticError, AmountError):
            raise BinanceAnswerError(
                f"Binance's answer makes an average price of {quote} / {executed}, outside the "
                f"amounts MasterTrade books ({AMOUNT_FLOOR:e} to {AMOUNT_LIMIT:e})"
            ) from None
    return OrderState(order_id, STATUSES.get(str(status), "submitted"), executed, average)


def parse_order(body: Mapping[str, Any]) -> OrderState:
    """From a POST, GET or DELETE /api/v3/order answer (BinanceAnswerError when unusable)."""
    executed, quote = read_amount(body, "executedQty"), read_amount(body, "cummulativeQuoteQty")
    return _state(read_id(body, "orderId"), body.get("status"), executed, quote)


def parse_fill(item: Mapping[str, Any]) -> Trade:
    """From an entry of a FULL answer's `fills` or of /api/v3/myTrades (BinanceAnswerError
    when unusable: a trade without its id could not be told from the others, and trades are
    booked once each by their id)."""
    return Trade(
        trade_id=read_id(item, "tradeId", "id"), price=read_amount(item, "price", positive=True),
        quantity=read_amount(item, "qty", positive=True), fee=read_amount(item, "commission"),
        fee_asset=str(item.get("commissionAsset") or ""),
    )  # fmt: skip


def parse_execution_report(event: Mapping[str, Any]) -> tuple[str, OrderState, Trade | None]:
    """(client order id, state, the trade if this report is one) of a user-data
    `executionReport`; a cancel's report carries the original id in `C`
    (BinanceAnswerError when unusable)."""
    client_order_id = str(event.get("C") or event.get("c") or "")
    if not client_order_id:
        raise BinanceAnswerError("an executionReport without a client order id ('c')")
    state = _state(read_id(event, "i"), event.get("X"), read_amount(event, "z"),
                   read_amount(event, "Z"))  # fmt: skip
    trade = None
    if event.get("x") == "TRADE":
        trade = Trade(read_id(event, "t"), read_amount(event, "L", positive=True),
                      read_amount(event, "l", positive=True),
                      read_amount(event, "n"), str(event.get("N") or ""))  # fmt: skip
    return client_order_id, state, trade


def base_asset(symbol: str, quote_asset: str) -> str:
    """The coin a symbol trades against the account's quote asset (BTC of BTCUSDT); "" when
    the symbol is not quoted in it."""
    return symbol.removesuffix(quote_asset) if quoted_in(symbol, quote_asset) else ""


def fee_symbols(quote_asset: str) -> tuple[str, ...]:
    """The symbols quoting FEE_ASSETS in the account's quote asset (BNBUSDT): the live
    valuation marks them whatever the books hold."""
    return tuple(f"{asset}{quote_asset}" for asset in FEE_ASSETS if asset != quote_asset)

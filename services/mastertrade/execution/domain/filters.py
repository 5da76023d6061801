"""Binance's symbol filters applied before an order is sent: tick size, step size, notional.

The quantity is rounded down to LOT_SIZE's stepSize (never more than approved), a limit price
to PRICE_FILTER's tickSize (down for a buy, up for a sell: never a worse price than asked);
then minQty/maxQty, minPrice/maxPrice and MIN_NOTIONAL/NOTIONAL are checked. A market order
also meets MARKET_LOT_SIZE (rounded down to its stepSize, within its minQty/maxQty), and its
notional is checked only where Binance checks it (MIN_NOTIONAL's applyToMarket, NOTIONAL's
applyMinToMarket and applyMaxToMarket), at the price Binance checks it at: the average over the
filter's avgPriceMins (/api/v3/avgPrice), for which the top of book stands in only far from the
bounds (`near_market_notional_bounds`: within NOTIONAL_MARGIN, the caller asks for the average).
A zero in any filter's field turns that rule off, as on Binance. Each field is read as any
number from Binance is (binance_status.read_amount: finite, within the platform's amount bounds,
not negative): a listing with one missing or unusable (a negative or NaN stepSize would skip the
rounding) is refused whole, FilterError naming the filter and field, and no order is sized by
it. An order that fails is refused here with the filter's name, as Binance would with code
-1013. So is a client order id Binance would refuse (newClientOrderId: at most 36 of letters,
digits and `.:/_-`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from mastertrade.core.amounts import exact_arithmetic
from mastertrade.execution.domain.binance_status import BinanceAnswerError, read_amount

CLIENT_ORDER_ID_LENGTH = 36
CLIENT_ORDER_ID = re.compile(r"^[.A-Z:/a-z0-9_-]+$")
# Within this fraction of a notional bound, a market order is checked at Binance's average price
# over avgPriceMins (5 on the symbols we trade) rather than the top of book; farther, both are on
# the same side of the bound unless they differ by more than 9 % (0.1 / 1.1), a move a listed
# coin makes in five minutes only in a crash or a spike (then Binance's -1013 rejects the order,
# as before). An average asked for every market order would cost a request each (weight 2).
NOTIONAL_MARGIN = Decimal("0.1")


class FilterError(ValueError):
    """The order breaks a symbol filter; the message names it."""


def check_client_order_id(client_order_id: str) -> None:
    """FilterError unless Binance takes `client_order_id` as a newClientOrderId."""
    if len(client_order_id) > CLIENT_ORDER_ID_LENGTH:
        raise FilterError(f"client order id {client_order_id!r} is longer than Binance's "
                          f"{CLIENT_ORDER_ID_LENGTH} characters")  # fmt: skip
    if not CLIENT_ORDER_ID.fullmatch(client_order_id):
        raise FilterError(f"client order id {client_order_id!r} has characters Binance refuses "
                          "(letters, digits and . : / _ - only)")  # fmt: skip


@dataclass(frozen=True)
class SymbolFilters:
    symbol: str
    tick_size: Decimal = Decimal(0)
    min_price: Decimal = Decimal(0)
    max_price: Decimal = Decimal(0)
    step_size: Decimal = Decimal(0)
    min_qty: Decimal = Decimal(0)
    max_qty: Decimal = Decimal(0)
    min_notional: Decimal = Decimal(0)
    max_notional: Decimal = Decimal(0)
    market_step_size: Decimal = Decimal(0)
    market_min_qty: Decimal = Decimal(0)
    market_max_qty: Decimal = Decimal(0)
    min_notional_to_market: bool = True
    max_notional_to_market: bool = False

    def market_notional_bounds(self) -> tuple[Decimal, Decimal]:
        """(minimum, maximum) notional a market order is held to (0: not checked)."""
        return (
            self.min_notional if self.min_notional_to_market else Decimal(0),
            self.max_notional if self.max_notional_to_market else Decimal(0),
        )


# The numbers each filter has (Binance documents them all), by filter, as SymbolFilters' fields
FIELDS: dict[str, dict[str, str]] = {
    "PRICE_FILTER": {"tickSize": "tick_size", "minPrice": "min_price", "maxPrice": "max_price"},
    "LOT_SIZE": {"stepSize": "step_size", "minQty": "min_qty", "maxQty": "max_qty"},
    "MARKET_LOT_SIZE": {"stepSize": "market_step_size", "minQty": "market_min_qty",
                        "maxQty": "market_max_qty"},
    "MIN_NOTIONAL": {"minNotional": "min_notional"},
    "NOTIONAL": {"minNotional": "min_notional", "maxNotional": "max_notional"},
}  # fmt: skip
# Whether a notional rule holds market orders too: (field, default when Binance leaves it out)
FLAGS: dict[str, dict[str, tuple[str, bool]]] = {
    "MIN_NOTIONAL": {"applyToMarket": ("min_notional_to_market", True)},
    "NOTIONAL": {"applyMinToMarket": ("min_notional_to_market", True),
                 "applyMaxToMarket": ("max_notional_to_market", False)},
}  # fmt: skip


def parse_filters(symbol_info: Mapping[str, Any]) -> SymbolFilters:
    """SymbolFilters from one entry of /api/v3/exchangeInfo's `symbols`; FilterError naming
    the filter and field when one is missing or unusable (no order is sized by it)."""
    symbol = str(symbol_info["symbol"])
    found: dict[str, Decimal | bool] = {}
    for item in symbol_info.get("filters") or []:
        if not isinstance(item, Mapping):
            raise FilterError(f"exchangeInfo for {symbol} has an invalid filter {item!r}")
        kind = str(item.get("filterType"))
        for key, name in FIELDS.get(kind, {}).items():
            found[name] = _filter_amount(symbol, kind, item, key)
        for key, (name, default) in FLAGS.get(kind, {}).items():
            found[name] = _filter_flag(symbol, kind, item, key, default)
    # each key is set above with its field's type; mypy cannot match a mixed dict to the fields
    return SymbolFilters(symbol, **found)  # type: ignore[arg-type]


def _filter_amount(symbol: str, kind: str, item: Mapping[str, Any], key: str) -> Decimal:
    """A filter's number, checked as any amount Binance sends (finite, within the platform's
    bounds, not negative): a step, a tick or a bound of 0 turns its rule off, as on Binance; a
    negative or NaN step would skip the rounding, and the order would go out unrounded."""
    if key not in item:
        raise FilterError(f"exchangeInfo for {symbol} has no {kind}.{key}")
    try:
        return read_amount(item, key)
    except BinanceAnswerError:
        raise FilterError(
            f"exchangeInfo for {symbol} has an invalid {kind}.{key} '{item[key]}'"
        ) from None


def _filter_flag(symbol: str, kind: str, item: Mapping[str, Any], key: str, default: bool) -> bool:
    value = item.get(key, default)
    if not isinstance(value, bool):  # a string "false" would read as true
        raise FilterError(f"exchangeInfo for {symbol} has an invalid {kind}.{key} '{value}'")
    return value


def _round(value: Decimal, step: Decimal, up: bool) -> Decimal:
    """`value` (not negative) to a multiple of `step`, up or down: whole steps counted exactly
    (a quotient rounded first, as `value / step` is, could land on the step above)."""
    if step <= 0:
        return value
    with exact_arithmetic():
        units, rest = divmod(value, step)
        return ((units + (1 if up and rest else 0)) * step).normalize()


def _bounds(name: str, value: Decimal, low: Decimal, high: Decimal) -> None:
    if low > 0 and value < low:
        raise FilterError(f"{name}: {value:f} is below the minimum {low:f}")
    if high > 0 and value > high:
        raise FilterError(f"{name}: {value:f} is above the maximum {high:f}")


def round_quantity(filters: SymbolFilters, quantity: Decimal, market: bool) -> Decimal:
    """`quantity` rounded down to LOT_SIZE's step (and MARKET_LOT_SIZE's), within their bounds;
    or FilterError naming the filter."""
    qty = _round(quantity, filters.step_size, up=False)
    if market:
        qty = _round(qty, filters.market_step_size, up=False)
    if qty <= 0:
        raise FilterError(f"LOT_SIZE: {quantity} rounds to 0 with stepSize {filters.step_size}"
                          + (f" and MARKET_LOT_SIZE stepSize {filters.market_step_size}"
                             if market else ""))  # fmt: skip
    _bounds("LOT_SIZE quantity", qty, filters.min_qty, filters.max_qty)
    if market:
        _bounds("MARKET_LOT_SIZE quantity", qty, filters.market_min_qty, filters.market_max_qty)
    return qty


def near_market_notional_bounds(
    filters: SymbolFilters, quantity: Decimal, reference_price: Decimal
) -> bool:
    """Is a market order of `quantity` within NOTIONAL_MARGIN of a notional bound Binance holds
    it to, at `reference_price` (the top of book)? Then Binance's average price, which it checks
    it at, may lie on the other side of the bound."""
    try:
        qty = round_quantity(filters, quantity, market=True)
    except FilterError:
        return False  # refused for its quantity, whatever the price
    with exact_arithmetic():
        notional = qty * reference_price
        return any(bound > 0 and abs(notional - bound) <= bound * NOTIONAL_MARGIN
                   for bound in filters.market_notional_bounds())  # fmt: skip


def apply_filters(
    filters: SymbolFilters,
    side: str,
    quantity: Decimal,
    price: Decimal | None,
    reference_price: Decimal | None,
    *,
    average_price: Decimal | None = None,
) -> tuple[Decimal, Decimal | None]:
    """(quantity, price) rounded to the symbol's steps, or FilterError naming the filter.

    No `price` means a market order. Its notional is checked at `average_price` (Binance's,
    over avgPriceMins) when given, else at `reference_price` (the top of book); without either
    it is left to Binance, which answers -1013 when it fails."""
    market = price is None
    qty = round_quantity(filters, quantity, market)
    rounded = None if price is None else _round(price, filters.tick_size, up=side == "sell")
    with exact_arithmetic():  # a notional just under a bound is not rounded onto it
        if rounded is not None:
            _bounds("PRICE_FILTER price", rounded, filters.min_price, filters.max_price)
            _bounds("NOTIONAL", qty * rounded, filters.min_notional, filters.max_notional)
        elif average_price is not None:
            _bounds(f"NOTIONAL at the average price {average_price:f}", qty * average_price,
                    *filters.market_notional_bounds())  # fmt: skip
        elif reference_price is not None:
            _bounds("NOTIONAL", qty * reference_price, *filters.market_notional_bounds())
    return qty, rounded


def find_symbol(exchange_info: Mapping[str, Any], symbol: str) -> Mapping[str, Any]:
    symbols: Sequence[Mapping[str, Any]] = exchange_info.get("symbols", [])
    for entry in symbols:
        if entry.get("symbol") == symbol:
            return entry
    raise FilterError(f"{symbol} is not traded on this exchange (not in exchangeInfo)")

"""The price a market buy was sized at, held to: no fill far above it.

The risk manager sizes an order at its signal's price (the value it adds to the position, the
symbol's exposure); a market order fills at whatever the book asks when it arrives. When the
book has run away from that price (a stale signal, a gap, a thin book), the fill would add
more exposure than the limits allowed. The executor refuses a market buy whose fill price is
more than MAX_PRICE_DEVIATION_PCT above the price it was sized at (`runaway_price`: its fill
price known beforehand, the paper fill's, or the ask a live buy would start from). Binance fills
a market order level after level down the book, so a live market buy is sent as a LIMIT order
at that ceiling (`ceiling`), immediate-or-cancel: it takes what the book offers up to the
ceiling, at the book's prices, and what is left expires; no trade of it is above the ceiling.
Sells are never held back by price: they only reduce exposure, and an exit blocked in a falling
market is the worse risk. Limit orders need no guard: their limit caps the price."""

from __future__ import annotations

from decimal import Decimal

from mastertrade.core.amounts import exact_arithmetic


def ceiling(
    side: str, order_type: str, sized_price: Decimal | None, max_deviation: Decimal
) -> Decimal | None:
    """The highest price a market buy sized at `sized_price` may fill at; None for an order the
    guard does not hold (a sell, a limit order, one with no sized price, the guard off)."""
    if side != "buy" or order_type != "market" or sized_price is None or max_deviation <= 0:
        return None
    with exact_arithmetic():
        return sized_price * (1 + max_deviation)


def runaway_price(
    side: str,
    order_type: str,
    sized_price: Decimal | None,
    fill_price: Decimal | None,
    max_deviation: Decimal,
) -> str | None:
    """Why the order may not fill at `fill_price`, or None when it may (0 turns it off). With
    no price to fill at (no fresh quote), a guarded buy may not go at all."""
    highest = ceiling(side, order_type, sized_price, max_deviation)
    if highest is None or sized_price is None:
        return None
    if fill_price is None:
        return "no fresh quote to hold the market buy to the price it was sized at"
    if fill_price <= highest:
        return None
    return (f"the market buy would fill at {fill_price.normalize():f}, more than "
            f"{max_deviation:%} above the {sized_price.normalize():f} the risk manager sized it "
            "at (MAX_PRICE_DEVIATION_PCT)")  # fmt: skip

"""The price a market buy was sized at, held to: no fill far above it.

The risk manager sizes an order at its signal's price (the value it adds to the position, the
symbol's exposure); a market order fills at whatever the book asks when it arrives. When the
book has run away from that price (a stale signal, a gap, a thin book), the fill would add
more exposure than the limits allowed. The executor refuses a market buy whose fill price is
more than MAX_PRICE_DEVIATION_PCT above the price it was sized at. Sells are never held back by
price: they only reduce exposure, and an exit blocked in a falling market is the worse risk.
Limit orders need no guard: their limit caps the price."""

from __future__ import annotations

from decimal import Decimal

from mastertrade.core.amounts import exact_arithmetic


def runaway_price(
    side: str,
    order_type: str,
    sized_price: Decimal | None,
    fill_price: Decimal | None,
    max_deviation: Decimal,
) -> str | None:
    """Why the order may not fill at `fill_price`, or None when it may (0 turns it off). With
    no price to fill at (no fresh quote), a guarded buy may not go at all."""
    if side != "buy" or order_type != "market" or sized_price is None or max_deviation <= 0:
        return None
    if fill_price is None:
        return "no fresh quote to hold the market buy to the price it was sized at"
    with exact_arithmetic():
        ceiling = sized_price * (1 + max_deviation)
    if fill_price <= ceiling:
        return None
    return (f"the market buy would fill at {fill_price.normalize():f}, more than "
            f"{max_deviation:%} above the {sized_price.normalize():f} the risk manager sized it "
            "at (MAX_PRICE_DEVIATION_PCT)")  # fmt: skip

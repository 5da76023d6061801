"""Paper fills: at the top of book with slippage and a fee, limit orders when the price crosses.

An order that takes liquidity (a market order, a limit order crossing the book on arrival)
trades at the top of book: a buy pays the ask plus slippage, a sell gets the bid minus
slippage, rounded to PRICE_DECIMALS against the trader (a buy up, a sell down), then capped at
the limit, so a fill is never better than the book nor worse than the limit, even for coins
priced near the step. A limit order that was resting in the book trades at its own price when
the book reaches it, however far the book moved through it: it is the maker, as on the
exchange. The fee is a fraction of the notional, in the quote asset, rounded up to
QUOTE_DECIMALS places so the account is never charged less than the rate says.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal

from mastertrade.core.amounts import exact_arithmetic

QUOTE_DECIMALS = Decimal("0.00000001")
PRICE_DECIMALS = Decimal("0.00000001")


@dataclass(frozen=True)
class Quote:
    bid: Decimal
    ask: Decimal


@dataclass(frozen=True)
class PaperFill:
    """A fill: `cash_delta` is what the quote balance changes by (negative for a buy)."""

    side: str
    quantity: Decimal
    price: Decimal
    notional: Decimal
    fee: Decimal

    @property
    def cash_delta(self) -> Decimal:
        with exact_arithmetic():
            return -(self.notional + self.fee) if self.side == "buy" else self.notional - self.fee


def crosses(side: str, limit_price: Decimal, quote: Quote) -> bool:
    """Would a limit order at `limit_price` trade against this book now?"""
    return quote.ask <= limit_price if side == "buy" else quote.bid >= limit_price


def fill_price(side: str, quote: Quote, slippage: Decimal, limit_price: Decimal | None) -> Decimal:
    """A taker's price: the top of book moved against us by `slippage` and rounded against us
    to PRICE_DECIMALS, then capped by the limit (rounding after the cap could cross it).
    ValueError for a sell that would get less than the smallest price."""
    with exact_arithmetic():  # the book times the slippage, then rounded once, against us
        return _taker_price(side, quote, slippage, limit_price)


def _taker_price(
    side: str, quote: Quote, slippage: Decimal, limit_price: Decimal | None
) -> Decimal:
    if side == "buy":
        price = (quote.ask * (1 + slippage)).quantize(PRICE_DECIMALS, rounding=ROUND_UP)
        return price if limit_price is None else min(price, limit_price)
    price = (quote.bid * (1 - slippage)).quantize(PRICE_DECIMALS, rounding=ROUND_DOWN)
    if limit_price is not None:
        return max(price, limit_price)
    if price <= 0:
        raise ValueError(
            f"the bid {quote.bid} less slippage is below the smallest price {PRICE_DECIMALS}"
        )
    return price


def fee_for(notional: Decimal, fee_rate: Decimal) -> Decimal:
    with exact_arithmetic():  # rounded up from the exact product, never from a rounded one
        return (notional * fee_rate).quantize(QUOTE_DECIMALS, rounding=ROUND_UP)


def build_fill(
    side: str,
    quantity: Decimal,
    quote: Quote,
    costs: tuple[Decimal, Decimal],
    limit_price: Decimal | None = None,
    *,
    resting: bool = False,
) -> PaperFill:
    """The fill of `quantity` against `quote` (the caller checked a limit order crosses);
    `costs` is (fee rate, slippage); a `resting` limit order fills at its limit price."""
    fee_rate, slippage = costs
    if resting and limit_price is not None:
        price = limit_price
    else:
        price = fill_price(side, quote, slippage, limit_price)
    with exact_arithmetic():
        notional = price * quantity
    return PaperFill(side, quantity, price, notional, fee_for(notional, fee_rate))


def reserve_for_buy(quantity: Decimal, limit_price: Decimal, fee_rate: Decimal) -> Decimal:
    """Cash an open limit buy holds back: the most it can cost, fee included."""
    with exact_arithmetic():
        notional = limit_price * quantity
        return notional + fee_for(notional, fee_rate)

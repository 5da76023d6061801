"""Paper fills: at the top of book with slippage and a fee, limit orders when the price crosses.

A buy pays the ask plus slippage, a sell gets the bid minus slippage; a limit order fills only
when the book crosses its price, and never at a worse price than its limit. The fee is a
fraction of the notional, in the quote asset, rounded up to QUOTE_DECIMALS places so the
account is never charged less than the rate says.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_UP, Decimal

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
        if self.side == "buy":
            return -(self.notional + self.fee)
        return self.notional - self.fee


def crosses(side: str, limit_price: Decimal, quote: Quote) -> bool:
    """Would a limit order at `limit_price` trade against this book now?"""
    return quote.ask <= limit_price if side == "buy" else quote.bid >= limit_price


def fill_price(side: str, quote: Quote, slippage: Decimal, limit_price: Decimal | None) -> Decimal:
    """The execution price: top of book moved against us by `slippage`, capped by the limit."""
    if side == "buy":
        price = quote.ask * (1 + slippage)
        if limit_price is not None:
            price = min(price, limit_price)
    else:
        price = quote.bid * (1 - slippage)
        if limit_price is not None:
            price = max(price, limit_price)
    return price.quantize(PRICE_DECIMALS, rounding=ROUND_HALF_EVEN)


def fee_for(notional: Decimal, fee_rate: Decimal) -> Decimal:
    return (notional * fee_rate).quantize(QUOTE_DECIMALS, rounding=ROUND_UP)


def build_fill(
    side: str,
    quantity: Decimal,
    quote: Quote,
    costs: tuple[Decimal, Decimal],
    limit_price: Decimal | None = None,
) -> PaperFill:
    """The fill of `quantity` against `quote` (the caller checked a limit order crosses);
    `costs` is (fee rate, slippage)."""
    fee_rate, slippage = costs
    price = fill_price(side, quote, slippage, limit_price)
    notional = price * quantity
    return PaperFill(side, quantity, price, notional, fee_for(notional, fee_rate))


def reserve_for_buy(quantity: Decimal, limit_price: Decimal, fee_rate: Decimal) -> Decimal:
    """Cash an open limit buy holds back: the most it can cost, fee included."""
    notional = limit_price * quantity
    return notional + fee_for(notional, fee_rate)

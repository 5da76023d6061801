"""Pure arbitrage maths."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Quotes(BaseModel):
    """Best ask on the venue to buy on, best bid on the venue to sell on, and the fees."""

    buy_ask: float = Field(gt=0)
    sell_bid: float = Field(gt=0)
    fee_bps: float = Field(default=10.0, ge=0)


class Opportunity(BaseModel):
    """Net spread in basis points after fees on both legs, and whether it pays."""

    gross_bps: float
    net_bps: float
    profitable: bool


def evaluate_spread(quotes: Quotes) -> Opportunity:
    """Buy at the ask on one venue, sell at the bid on another, pay the fee twice."""
    gross = (quotes.sell_bid - quotes.buy_ask) / quotes.buy_ask * 10_000
    net = gross - 2 * quotes.fee_bps
    return Opportunity(gross_bps=round(gross, 4), net_bps=round(net, 4), profitable=net > 0)

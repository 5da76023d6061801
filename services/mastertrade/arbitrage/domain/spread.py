"""The net spread of buying at one ask and selling at another bid, fees included."""

from __future__ import annotations

from decimal import Decimal, localcontext

from pydantic import BaseModel, ConfigDict, Field

from mastertrade.core.market_messages import Amount

BPS = Decimal(10_000)
FOUR_PLACES = Decimal("0.0001")
SPREAD_DIGITS = 80
"""Enough for any spread of two accepted amounts (1e-30 to 1e15: up to 1e49 basis points) to
four places; Decimal's default 28 digits cannot quantize one past 1e24 (a 500 before)."""


class Quotes(BaseModel):
    """Best ask on the venue to buy on, best bid on the venue to sell on, and the fee per leg."""

    model_config = ConfigDict(extra="forbid")

    buy_ask: Amount
    sell_bid: Amount
    fee_bps: Decimal = Field(default=Decimal(10), ge=0, le=1000)


class SpreadResult(BaseModel):
    """Net spread in basis points after fees on both legs, and whether it pays."""

    gross_bps: Decimal
    net_bps: Decimal
    profitable: bool


def evaluate_spread(quotes: Quotes) -> SpreadResult:
    """Buy at the ask on one venue, sell at the bid on another, pay the fee twice."""
    with localcontext(prec=SPREAD_DIGITS):
        gross = (quotes.sell_bid - quotes.buy_ask) / quotes.buy_ask * BPS
        net = gross - 2 * quotes.fee_bps
        return SpreadResult(
            gross_bps=gross.quantize(FOUR_PLACES),
            net_bps=net.quantize(FOUR_PLACES),
            profitable=net > 0,
        )

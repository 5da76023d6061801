"""Cross-venue arbitrage: buy a symbol at one venue's ask, sell it at another venue's bid."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from mastertrade.arbitrage.domain.opportunity import Leg, Opportunity, exact
from mastertrade.core.market_messages import BookTicker

BPS = Decimal(10_000)


def evaluate_cross(
    buy: BookTicker,
    sell: BookTicker,
    fees_bps: tuple[Decimal, Decimal],
    quote_asset: str,
    now: datetime,
) -> Opportunity | None:
    """Buy `buy.symbol` at `buy.ask`, sell the same quantity at `sell.bid`; each venue takes
    its fee from what it pays out. Size: the smaller of the two top-of-book quantities. The
    profit is in the quote asset; None when it is not positive."""
    keep_buy = 1 - fees_bps[0] / BPS
    keep_sell = 1 - fees_bps[1] / BPS
    quantity = min(buy.ask_qty, sell.bid_qty / keep_buy)
    cost = quantity * buy.ask
    received_base = quantity * keep_buy
    proceeds = received_base * sell.bid * keep_sell
    if proceeds <= cost:
        return None
    legs = (
        Leg(buy.venue, buy.symbol, "buy", buy.ask, exact(cost), exact(received_base)),
        Leg(sell.venue, sell.symbol, "sell", sell.bid, exact(received_base), exact(proceeds)),
    )
    return Opportunity(
        kind="cross_venue",
        venue=f"{buy.venue}->{sell.venue}",
        route=f"{buy.symbol}: {buy.venue} -> {sell.venue}",
        start_asset=quote_asset,
        start_amount=exact(cost),
        expected_profit=exact(proceeds - cost),
        profit_bps=((proceeds / cost - 1) * BPS).quantize(Decimal("0.0001"), rounding="ROUND_DOWN"),
        legs=legs,
        detected_at=now,
    )

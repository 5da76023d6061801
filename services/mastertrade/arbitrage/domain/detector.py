"""Detection on each new quote: the triangles and venue pairs that the quote touches.

A quote enters the book only if it is fresh; a triangle or venue pair is priced only when every
quote it needs is fresh (no more than `max_age` behind its venue's present, see `book`) at the
time of detection. Non-finite or crossed quotes never get this far: `BookTicker` refuses them
where the message is parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from mastertrade.arbitrage.domain.book import QuoteBook, is_fresh
from mastertrade.arbitrage.domain.cross import evaluate_cross
from mastertrade.arbitrage.domain.opportunity import Opportunity
from mastertrade.arbitrage.domain.triangle import Pair, evaluate_triangle, find_triangles
from mastertrade.core.market_messages import BookTicker

BPS = Decimal(10_000)


@dataclass
class Detector:
    """Finds opportunities whose profit is above `min_profit_bps` after fees."""

    pairs: tuple[Pair, ...]
    fee_bps: Decimal
    max_age: timedelta
    min_profit_bps: Decimal = Decimal(0)
    venue_fees_bps: Mapping[str, Decimal] = field(default_factory=dict)
    book: QuoteBook = field(default_factory=QuoteBook)

    def __post_init__(self) -> None:
        self.triangles = find_triangles(self.pairs)
        self.quote_asset = {pair.symbol: pair.quote for pair in self.pairs}

    def fee_of(self, venue: str) -> Decimal:
        return self.venue_fees_bps.get(venue, self.fee_bps)

    def on_quote(self, quote: BookTicker, now: datetime) -> list[Opportunity]:
        """Record `quote` and return what it makes profitable; nothing if it is stale."""
        present = self.book.present(quote.venue, now)
        if not is_fresh(quote, present, self.max_age) or not self.book.update(quote):
            return []
        found = self._triangular(quote, now) + self._cross_venue(quote, now)
        return [item for item in found if item.profit_bps > self.min_profit_bps]

    def _triangular(self, quote: BookTicker, now: datetime) -> list[Opportunity]:
        found: list[Opportunity] = []
        for triangle in self.triangles:
            if quote.symbol not in triangle.symbols:
                continue
            quotes = {}
            for symbol in triangle.symbols:
                fresh = self.book.fresh(quote.venue, symbol, now, self.max_age)
                if fresh is not None:
                    quotes[symbol] = fresh
            found += evaluate_triangle(triangle, quotes, self.fee_of(quote.venue), now)
        return found

    def _cross_venue(self, quote: BookTicker, now: datetime) -> list[Opportunity]:
        asset = self.quote_asset.get(quote.symbol)
        if asset is None:
            return []
        found = []
        for venue in self.book.venues_of(quote.symbol):
            other = self.book.fresh(venue, quote.symbol, now, self.max_age)
            if venue == quote.venue or other is None:
                continue
            for buy, sell in ((quote, other), (other, quote)):
                fees = (self.fee_of(buy.venue), self.fee_of(sell.venue))
                opportunity = evaluate_cross(buy, sell, fees, asset, now)
                if opportunity is not None:
                    found.append(opportunity)
        return found

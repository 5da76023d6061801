"""The latest quote of each (venue, symbol), and which of them are fresh enough to trade on."""

from __future__ import annotations

from datetime import datetime, timedelta

from mastertrade.core.market_messages import BookTicker


def is_fresh(quote: BookTicker, now: datetime, max_age: timedelta) -> bool:
    """A quote no older than `max_age`, and not from the future by more than that either."""
    age = now - quote.time
    return -max_age <= age <= max_age


class QuoteBook:
    """Latest book ticker per venue and symbol; an older quote never replaces a newer one."""

    def __init__(self) -> None:
        self._quotes: dict[tuple[str, str], BookTicker] = {}

    def update(self, quote: BookTicker) -> bool:
        """Keep `quote` if it is the newest of its venue and symbol; False when it is not."""
        key = (quote.venue, quote.symbol)
        known = self._quotes.get(key)
        if known is not None and known.time > quote.time:
            return False
        self._quotes[key] = quote
        return True

    def fresh(
        self, venue: str, symbol: str, now: datetime, max_age: timedelta
    ) -> BookTicker | None:
        """The quote of `symbol` on `venue` if there is one and it is fresh."""
        quote = self._quotes.get((venue, symbol))
        if quote is None or not is_fresh(quote, now, max_age):
            return None
        return quote

    def venues_of(self, symbol: str) -> list[str]:
        """Every venue with a quote for `symbol`, sorted."""
        return sorted(venue for venue, quoted in self._quotes if quoted == symbol)

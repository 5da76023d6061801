"""The latest quote of each (venue, symbol), and which of them are fresh enough to trade on.

Freshness is judged on each venue's own clock: a venue's present is the later of the wall clock
and the newest quote time it has sent. A real venue's quotes are stamped when received, so its
present is the wall clock and a quote older than `max_age` by it is stale (a backlog replayed
after an outage never trades). The simulated market stamps its quotes with its market time,
which runs ahead of the wall clock at MARKET_DATA_SPEED: its present is its newest quote, and a
quote the market has moved past by more than `max_age` is stale, whatever the wall clock says.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from mastertrade.core.market_messages import BookTicker


def is_fresh(quote: BookTicker, present: datetime, max_age: timedelta) -> bool:
    """A quote no more than `max_age` behind its venue's `present`."""
    return present - quote.time <= max_age


class QuoteBook:
    """Latest book ticker per venue and symbol; an older quote never replaces a newer one."""

    def __init__(self) -> None:
        self._quotes: dict[tuple[str, str], BookTicker] = {}
        self._newest: dict[str, datetime] = {}

    def present(self, venue: str, now: datetime) -> datetime:
        """The venue's present: the wall clock `now`, or its newest quote's time if later."""
        newest = self._newest.get(venue)
        return now if newest is None or newest < now else newest

    def update(self, quote: BookTicker) -> bool:
        """Keep `quote` if it is the newest of its venue and symbol; False when it is not."""
        key = (quote.venue, quote.symbol)
        known = self._quotes.get(key)
        if known is not None and known.time > quote.time:
            return False
        self._quotes[key] = quote
        if quote.venue not in self._newest or self._newest[quote.venue] < quote.time:
            self._newest[quote.venue] = quote.time
        return True

    def fresh(
        self, venue: str, symbol: str, now: datetime, max_age: timedelta
    ) -> BookTicker | None:
        """The quote of `symbol` on `venue` if there is one and it is fresh."""
        quote = self._quotes.get((venue, symbol))
        if quote is None or not is_fresh(quote, self.present(venue, now), max_age):
            return None
        return quote

    def venues_of(self, symbol: str) -> list[str]:
        """Every venue with a quote for `symbol`, sorted."""
        return sorted(venue for venue, quoted in self._quotes if quoted == symbol)

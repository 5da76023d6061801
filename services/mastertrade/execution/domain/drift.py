"""Positions the books hold beyond what Binance's account holds: a drift people must hear of.

The live books build each position from the fills they booked; Binance's account snapshot says
what the account holds. More coins on Binance than in the books is normal (coins bought outside
MasterTrade). Fewer is not: a sell of what the books show would be refused, and the risk
manager counts exposure that is not there. It comes from coins moved outside MasterTrade (a
withdrawal, a trade in Binance's app) or from a booking fault; the books are not changed
automatically, since either cause needs a person to look.

A snapshot can be taken between a fill and its booking (a sell filled, its report not booked
yet), so a shortfall counts only once two snapshots in a row show the same figures."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from mastertrade.execution.domain.binance_status import base_asset

Shortfall = tuple[Decimal, Decimal]
"""(what the books hold, what Binance holds) of a symbol's coin."""


def shortfalls(
    books: Mapping[str, Decimal], holdings: Mapping[str, Decimal], quote_asset: str
) -> dict[str, Shortfall]:
    """The symbols whose books hold more of the coin than Binance's snapshot does."""
    found: dict[str, Shortfall] = {}
    for symbol, quantity in books.items():
        coin = base_asset(symbol, quote_asset)
        held = holdings.get(coin, Decimal(0))
        if coin and quantity > held:
            found[symbol] = (quantity, held)
    return found


class DriftWatch:
    """Confirms shortfalls across snapshots: `observe` returns those seen, with the same
    figures, in the snapshot before as well."""

    def __init__(self) -> None:
        self._last: dict[str, Shortfall] = {}

    def observe(self, found: Mapping[str, Shortfall]) -> dict[str, Shortfall]:
        last = self._last
        confirmed = {symbol: pair for symbol, pair in found.items() if last.get(symbol) == pair}
        self._last = dict(found)
        return confirmed


def drift_message(symbol: str, shortfall: Shortfall, quote_asset: str) -> tuple[str, str]:
    """(title, message) of the alert for a confirmed shortfall."""
    books, held = shortfall
    coin = base_asset(symbol, quote_asset)
    title = f"Live books hold more {coin} than Binance ({symbol})"
    message = (
        f"The books hold {books.normalize():f} {coin} from the fills they booked; Binance's "
        f"account holds {held.normalize():f}. Sells beyond what Binance holds will be refused "
        "and the risk manager counts exposure that is not there. Look for coins moved outside "
        "MasterTrade (a withdrawal, a trade in Binance's app) or a fill booked twice (the "
        "orders and fills tables); the books are not changed automatically."
    )
    return title, message

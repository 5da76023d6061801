"""Binance's listing of each symbol the executor trades: its filters, cached for a while.

exchangeInfo (weight 20) is asked once per symbol and FILTERS_TTL_SECONDS; Binance changes a
listed symbol's tickSize, stepSize or minimum notional now and then, so the filters are fetched
again once that old, and at once when Binance refuses an order for a filter (-1013, live.py).
"""

from __future__ import annotations

import logging
import time

from mastertrade.execution.adapters.binance import (
    INVALID_SYMBOL,
    BinanceClient,
    BinanceError,
    BinanceRejectedError,
)
from mastertrade.execution.domain.filters import (
    FilterError,
    SymbolFilters,
    find_symbol,
    parse_filters,
)

logger = logging.getLogger("mastertrade.execution.live")

FILTERS_TTL_SECONDS = 3600.0


class Listings:
    """Each symbol's filters as Binance lists them, or why no order for it can be sent."""

    def __init__(self, client: BinanceClient, ttl: float = FILTERS_TTL_SECONDS) -> None:
        self.client, self.ttl = client, ttl
        self._known: dict[str, tuple[SymbolFilters, float]] = {}  # and when fetched (monotonic)

    async def get(self, symbol: str, fresh: bool = False) -> SymbolFilters | str:
        """The symbol's filters (fetched again when `fresh` or older than `ttl`), or why no
        order for it can be sent (Binance does not list it, or lists it with a filter's field
        missing or unusable: the order is rejected, not held, since waiting would ask for the
        same listing every round); other failures raise (the order waits for the next round),
        unless the filters aged and those fetched before are used."""
        known = self._known.get(symbol)
        if known is not None and not fresh and time.monotonic() - known[1] < self.ttl:
            return known[0]
        try:
            filters = parse_filters(find_symbol(await self.client.exchange_info(symbol), symbol))
        except BinanceRejectedError as error:
            if error.code == INVALID_SYMBOL:
                return f"not sent: {symbol} is not listed on Binance ({error.code} {error.message})"
            return self._known_after(symbol, error, None if fresh else known)
        except BinanceError as error:
            return self._known_after(symbol, error, None if fresh else known)
        except FilterError as error:
            return f"not sent: {error}"
        self._known[symbol] = (filters, time.monotonic())
        return filters

    @staticmethod
    def _known_after(
        symbol: str, error: BinanceError, known: tuple[SymbolFilters, float] | None
    ) -> SymbolFilters:
        """The filters fetched before, when a refresh because they aged failed (Binance away, a
        weight pause): they were good an hour ago, and an order held for them could go stale.
        With none (or asked for fresh ones), the failure is raised: the order waits."""
        if known is None:
            raise error
        logger.warning("fetching %s's filters again failed (%s): the ones fetched before are "
                       "used meanwhile", symbol, error)  # fmt: skip
        return known[0]

    async def changed(self, symbol: str, used: SymbolFilters | str | None) -> bool:
        """Are the symbol's filters, fetched again, other than the `used` ones Binance refused an
        order under (-1013)? A failed fetch counts as no: the order is rejected as refused."""
        try:
            fresh = await self.get(symbol, fresh=True)
        except BinanceError as error:
            logger.warning("fetching %s's filters again failed (%s)", symbol, error)
            return False
        return isinstance(fresh, SymbolFilters) and fresh != used

"""The simulated market, live: each minute's trades, book tickers and closing candles fed to the
sink at the configured speed (MARKET_DATA_SPEED market seconds per wall second).

The feed keeps its own schedule from its start, so a slow moment is caught up rather than
stretching market time; it follows the same `SimulatedMarket` that wrote the history, so the
first live candle opens at the last stored close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from mastertrade.market_data.domain.market import SimulatedMarket
from mastertrade.market_data.sink import MarketSink

SOURCE = "simulated"


async def run_simulated_feed(
    market: SimulatedMarket, sink: MarketSink, symbols: Sequence[str], speed: float
) -> None:
    """Feed minute after minute until cancelled."""
    loop = asyncio.get_running_loop()
    wanted = set(symbols)
    minute_seconds = 60.0 / speed
    started = loop.time()
    minutes = 0
    while True:
        block = market.generate(1)
        base = started + minutes * minute_seconds
        for offset, event in market.live_events(block, 0):
            if event.symbol not in wanted:
                continue
            delay = base + offset / 60.0 * minute_seconds - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sink.submit(event, SOURCE)
        minutes += 1
        await asyncio.sleep(0)  # a fast feed must still let the writer and HTTP run

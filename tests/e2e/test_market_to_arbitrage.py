"""The market data service's book tickers reach the arbitrage service as it parses them: the
simulated market (its clock hours ahead of the wall clock at high speed) and the arbitrage
service as real processes on the real broker; every quote is accepted, none is refused as
invalid, and the triangle is priced on the market's own clock."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.stack import Stack, wait_until

pytestmark = pytest.mark.e2e

TRIANGLE = ("BTCUSDT", "ETHBTC", "ETHUSDT")
QUOTES_WANTED = 300


async def arbitrage_counts(base_url: str) -> dict[str, float]:
    """The arbitrage service's quote and opportunity counters, by outcome or kind."""
    async with httpx.AsyncClient(base_url=base_url, timeout=5.0) as client:
        text = (await client.get("/metrics")).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "mastertrade_arbitrage_quotes_total":
                counts[sample.labels["outcome"]] = sample.value
            elif sample.name == "mastertrade_arbitrage_opportunities_total":
                counts[f"opportunities:{sample.labels['kind']}"] = sample.value
    return counts


async def test_book_tickers_from_the_market_are_accepted_and_priced(stack: Stack) -> None:
    # fees 0 and a reporting interval of 0: any triangle the simulated basis noise makes
    # profitable is reported, which it can only be when all three legs are fresh
    arbitrage = await stack.start(
        "arbitrage_service", ARBITRAGE_FEE_BPS="0", ARBITRAGE_REPORT_INTERVAL="0"
    )
    await stack.start(
        "market_data_service", MARKET_DATA_SOURCE="simulated", MARKET_DATA_SPEED="600",
        MARKET_DATA_SYMBOLS=",".join(TRIANGLE), MARKET_DATA_BACKFILL_DAYS="0",
    )  # fmt: skip
    url = Stack.url(arbitrage)

    async def enough() -> dict[str, float] | None:
        counts = await arbitrage_counts(url)
        return counts if counts.get("accepted", 0) >= QUOTES_WANTED else None

    await wait_until(enough, f"{QUOTES_WANTED} quotes accepted by the arbitrage service")
    counts = await wait_until(
        lambda: _with_triangles(url), "a triangle priced on the simulated market's clock", 60.0
    )
    assert counts.get("invalid", 0) == 0, f"quotes refused as invalid: {counts}"


async def _with_triangles(url: str) -> dict[str, float] | None:
    counts = await arbitrage_counts(url)
    return counts if counts.get("opportunities:triangular", 0) > 0 else None

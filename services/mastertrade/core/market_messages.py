"""The book ticker message of the market data exchange (`ticker.<SYMBOL>`), as the arbitrage
consumers. Decimals travel as JSON strings ("67012.35"), never floats; times as ISO 8601 UTC.
Every number is checked finite and within the platform's one bound
(`mastertrade.core.amounts`) where the message enters.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from mastertrade.core.messages import PositiveAmount

# a price or quantity on the bus: > 0, finite and within the platform's one bound, checked
# before the comparison so that NaN and Infinity are named as such
Amount = PositiveAmount


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a time zone, e.g. 2025-01-01T00:00:00Z")
    return value.astimezone(UTC)


UtcTime = Annotated[datetime, AfterValidator(_utc)]


# --- market data: book tickers (routing key ticker.<SYMBOL>) ----------------------------------


class BookTicker(BaseModel):
    """The best bid and ask of one symbol on one venue, with their quantities.

    Published by market_data_service on `mastertrade.market_data` with routing key
    `ticker.<SYMBOL>`; JSON `{symbol, bid, bid_qty, ask, ask_qty, time}` (+ optional `venue`).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    symbol: str = Field(pattern=r"^[A-Z0-9]{2,20}$", description="e.g. BTCUSDT")
    bid: Amount
    bid_qty: Amount
    ask: Amount
    ask_qty: Amount
    time: UtcTime
    venue: str = Field(default="binance", pattern=r"^[a-z0-9_-]{1,32}$")

    @model_validator(mode="after")
    def _not_crossed(self) -> Self:
        if self.bid > self.ask:
            raise ValueError(f"bid {self.bid} is above ask {self.ask}: a crossed book")
        return self

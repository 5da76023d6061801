"""The book ticker message of the market data exchange (`ticker.<SYMBOL>`), as the arbitrage
consumers. Decimals travel as JSON strings ("67012.35"), never floats; times as ISO 8601 UTC.
Every number is checked finite and within bounds where the message enters.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, model_validator

# Largest price or quantity accepted anywhere: far above any real market, far below overflow
MAX_AMOUNT = Decimal("1e18")


def _finite(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("must be a finite decimal number (not NaN or Infinity)")
    if value > MAX_AMOUNT:
        raise ValueError(f"must be at most {MAX_AMOUNT}")
    return value


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a time zone, e.g. 2025-01-01T00:00:00Z")
    return value.astimezone(UTC)


Amount = Annotated[
    Decimal,
    Field(gt=0, allow_inf_nan=True),  # inf/nan reach _finite, which names the problem
    AfterValidator(_finite),
    PlainSerializer(str, return_type=str, when_used="json"),
]
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

"""The book ticker message of the market data exchange (`ticker.<SYMBOL>`), as the market data
service publishes it and the arbitrage service consumes it. Decimals travel as JSON strings
("67012.35"), never floats; times as ISO 8601 UTC. Every number is checked finite and within the
platform's one bound (`mastertrade.core.amounts`) where the message enters.
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
    """`value` in UTC; a ValueError (a validation error) when it has no zone or has no UTC
    equivalent (9999-12-31T23:00:00-05:00 overflows, which would escape validation as an
    OverflowError)."""
    if value.tzinfo is None:
        raise ValueError("must carry a time zone, e.g. 2025-01-01T00:00:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            f"{value.isoformat()} has no UTC time (years 1 to 9999): send a time such as "
            "2025-01-01T00:00:00Z"
        ) from None


UtcTime = Annotated[datetime, AfterValidator(_utc)]


# --- market data: book tickers (routing key ticker.<SYMBOL>) ----------------------------------

DEFAULT_VENUE = "binance"


class BookTicker(BaseModel):
    """The best bid and ask of one symbol on one venue, with their quantities.

    Published by market_data_service on `mastertrade.market_data` with routing key
    `ticker.<SYMBOL>` (`market_data.domain.events.to_message` builds it from this model, so
    publisher and consumers share one contract); JSON `{symbol, bid, bid_qty, ask, ask_qty,
    time, venue, update_id}`, `venue` and `update_id` optional. `time` is the venue's clock: a
    real venue's quote is stamped when it is received, the simulated market's at its own market
    time, which runs ahead of the wall clock at MARKET_DATA_SPEED.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    symbol: str = Field(pattern=r"^[A-Z0-9]{2,20}$", description="e.g. BTCUSDT")
    bid: Amount
    bid_qty: Amount
    ask: Amount
    ask_qty: Amount
    time: UtcTime
    venue: str = Field(default=DEFAULT_VENUE, pattern=r"^[a-z0-9_-]{1,32}$")
    update_id: int | None = Field(
        default=None,
        ge=0,
        le=2**63 - 1,
        description="the venue's book update id, growing with each change",
    )

    @model_validator(mode="after")
    def _not_crossed(self) -> Self:
        if self.bid > self.ask:
            raise ValueError(f"bid {self.bid} is above ask {self.ask}: a crossed book")
        return self

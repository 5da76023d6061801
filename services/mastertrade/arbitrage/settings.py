"""Settings of arbitrage_service: the pairs watched, fees, freshness, and a second venue."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from pydantic import Field, SecretStr, field_validator

from mastertrade.arbitrage.domain.detector import Detector
from mastertrade.arbitrage.domain.triangle import parse_pairs
from mastertrade.core.settings import ServiceSettings


class ArbitrageSettings(ServiceSettings):
    """BINANCE_API_KEY and BINANCE_API_SECRET as the seed's compose passes them, and the
    detection's figures (ARBITRAGE_*)."""

    binance_api_key: SecretStr | None = Field(default=None, description="a Binance API key")
    binance_api_secret: SecretStr | None = Field(default=None, description="a Binance secret")
    arbitrage_pairs: str = Field(
        default="BTC/USDT,ETH/BTC,ETH/USDT",
        description="comma-separated BASE/QUOTE pairs, e.g. BTC/USDT,ETH/BTC,ETH/USDT",
    )
    arbitrage_fee_bps: Decimal = Field(
        default=Decimal(10), ge=0, le=1000, description="the taker fee per leg in basis points"
    )
    arbitrage_min_profit_bps: Decimal = Field(
        default=Decimal(0), ge=0, le=10_000, description="the least profit reported, in bps"
    )
    arbitrage_max_quote_age: float = Field(
        default=5.0, gt=0, le=3600, description="seconds after which a quote is stale (0 < s)"
    )
    arbitrage_report_interval: float = Field(
        default=1.0, ge=0, le=3600, description="least seconds between reports of one route"
    )
    arbitrage_second_venue_url: str | None = Field(
        default=None,
        description="an http(s):// base URL of a Binance-compatible REST API for cross-venue "
        "quotes (GET /api/v3/ticker/bookTicker), e.g. https://api.binance.us",
    )
    arbitrage_second_venue_name: str = Field(
        default="venue2", pattern=r"^[a-z0-9_-]{1,32}$", description="the second venue's name"
    )
    arbitrage_second_venue_fee_bps: Decimal = Field(
        default=Decimal(10), ge=0, le=1000, description="the second venue's fee per leg, bps"
    )
    arbitrage_second_venue_poll: float = Field(
        default=1.0, ge=0.05, le=600, description="seconds between polls of the second venue"
    )

    @field_validator("arbitrage_pairs")
    @classmethod
    def _pairs(cls, value: str) -> str:
        parse_pairs(value)
        return value

    @field_validator("arbitrage_second_venue_url")
    @classmethod
    def _venue_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("expected a URL starting with http:// or https://")
        return value or None

    def detector(self) -> Detector:
        """The detector these settings describe."""
        venue_fees = {self.arbitrage_second_venue_name: self.arbitrage_second_venue_fee_bps}
        return Detector(
            pairs=parse_pairs(self.arbitrage_pairs),
            fee_bps=self.arbitrage_fee_bps,
            max_age=timedelta(seconds=self.arbitrage_max_quote_age),
            min_profit_bps=self.arbitrage_min_profit_bps,
            venue_fees_bps=venue_fees if self.arbitrage_second_venue_url else {},
        )

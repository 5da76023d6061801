"""Settings of arbitrage_service: the Binance key and secret (optional; quotes are public)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from mastertrade.core.settings import ServiceSettings


class ArbitrageSettings(ServiceSettings):
    """BINANCE_API_KEY and BINANCE_API_SECRET, as the seed's compose passes them."""

    binance_api_key: SecretStr | None = Field(default=None, description="a Binance API key")
    binance_api_secret: SecretStr | None = Field(default=None, description="a Binance secret")

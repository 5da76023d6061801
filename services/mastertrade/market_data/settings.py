"""Settings of market_data_service: the seed's API keys, all optional (offline source without)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from mastertrade.core.settings import ServiceSettings


class MarketDataSettings(ServiceSettings):
    """BINANCE_API_KEY and the other data providers' keys of the seed."""

    binance_api_key: SecretStr | None = Field(default=None, description="a Binance API key")
    binance_api_secret: SecretStr | None = Field(default=None, description="a Binance secret")
    moralis_api_key: SecretStr | None = None
    glassnode_api_key: SecretStr | None = None
    twitter_bearer_token: SecretStr | None = None
    reddit_client_id: SecretStr | None = None
    reddit_client_secret: SecretStr | None = None
    lunarcrush_api_key: SecretStr | None = None

    def configured_sources(self) -> dict[str, bool]:
        """Which data providers have credentials (Binance needs both key and secret)."""
        return {
            "binance": self.binance_api_key is not None and self.binance_api_secret is not None,
            "moralis": self.moralis_api_key is not None,
            "glassnode": self.glassnode_api_key is not None,
            "twitter": self.twitter_bearer_token is not None,
            "reddit": self.reddit_client_id is not None and self.reddit_client_secret is not None,
            "lunarcrush": self.lunarcrush_api_key is not None,
        }

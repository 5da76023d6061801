"""Settings of market_data_service: its source (simulated or Binance), symbols, history, and the
seed's API keys, all optional (the simulated market needs none)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from mastertrade.core.settings import ServiceSettings
from mastertrade.market_data.domain import normalise_symbol

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "ETHBTC", "BNBUSDT", "SOLUSDT")
STREAM_KINDS = ("trade", "kline_1m", "bookTicker")


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class MarketDataSettings(ServiceSettings):
    """The source and its figures, plus BINANCE_API_KEY and the seed's other providers' keys."""

    market_data_source: Literal["auto", "simulated", "binance"] = Field(
        default="auto",
        description="simulated, binance, or auto (binance when BINANCE_API_KEY and "
        "BINANCE_API_SECRET are set, else simulated)",
    )
    market_data_symbols: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_SYMBOLS,
        min_length=1,
        max_length=200,
        description="comma-separated trading pairs, e.g. BTCUSDT,ETHBTC,ETHUSDT",
    )
    market_data_seed: int = Field(
        default=42, ge=0, le=2**63 - 1, description="seed of the simulated market (0 <= n)"
    )
    market_data_speed: float = Field(
        default=60.0,
        ge=0.01,
        le=86_400,
        description="simulated market seconds per wall-clock second (60: 1 s is 1 min)",
    )
    market_data_backfill_days: int = Field(
        default=90,
        ge=0,
        le=3650,
        description="days of 1-minute candles to backfill into an empty database (0..3650)",
    )
    market_data_batch_size: int = Field(
        default=2000, ge=1, le=100_000, description="events written per batch (1..100000)"
    )
    market_data_flush_interval: float = Field(
        default=0.5, gt=0, le=60, description="longest wait before a batch is written, seconds"
    )
    binance_rest_url: str = Field(
        default="https://api.binance.com",
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="Binance REST base URL (https://api.binance.com, "
        "https://testnet.binance.vision, or a local server)",
    )
    binance_ws_url: str = Field(
        default="wss://stream.binance.com:9443",
        pattern=r"^wss?://[^\s/]+(/[^\s]*)?$",
        description="Binance WebSocket base URL (wss://stream.binance.com:9443, "
        "wss://stream.testnet.binance.vision, or a local server)",
    )
    binance_max_weight_per_minute: int = Field(
        default=4800,
        ge=10,
        le=6000,
        description="REST request weight to stay under per minute (Binance's limit is 6000)",
    )
    binance_ws_rotate_seconds: float = Field(
        default=82_800,
        ge=1,
        le=86_000,
        description="open a fresh WebSocket after this many seconds, before Binance's 24 h cut",
    )
    binance_ws_max_backoff: float = Field(
        default=30.0, gt=0, le=600, description="longest pause between WebSocket reconnects, s"
    )
    binance_api_key: SecretStr | None = Field(default=None, description="a Binance API key")
    binance_api_secret: SecretStr | None = Field(default=None, description="a Binance secret")
    moralis_api_key: SecretStr | None = None
    glassnode_api_key: SecretStr | None = None
    twitter_bearer_token: SecretStr | None = None
    reddit_client_id: SecretStr | None = None
    reddit_client_secret: SecretStr | None = None
    lunarcrush_api_key: SecretStr | None = None

    @field_validator("market_data_symbols", mode="before")
    @classmethod
    def _symbols(cls, value: object) -> object:
        parts = _split(value)
        if isinstance(parts, list | tuple):
            return tuple(normalise_symbol(str(part)) for part in parts)
        return parts

    @field_validator("market_data_source", mode="before")
    @classmethod
    def _lower_source(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    def source(self) -> Literal["simulated", "binance"]:
        """The market data source in effect (auto resolved)."""
        if self.market_data_source == "auto":
            return "binance" if self.configured_sources()["binance"] else "simulated"
        return self.market_data_source

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

"""Settings of market_data_service: its source (simulated or Binance), symbols, history, and the
seed's API keys, all optional (the simulated market needs none)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import NoDecode

from mastertrade.core.settings import ServiceSettings
from mastertrade.market_data.domain import normalise_symbol

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT", "ETHBTC", "BNBUSDT", "SOLUSDT")
STREAM_KINDS = ("trade", "kline_1m", "bookTicker")
URL = r"^https?://[^\s/]+(/[^\s]*)?$"
LISTS = {
    "sentiment_assets": re.compile(r"^[A-Z0-9]{2,10}$"),
    "reddit_subreddits": re.compile(r"^[A-Za-z0-9_]{2,21}$"),
    "glassnode_metrics": re.compile(r"^[a-z0-9_]{1,40}/[a-z0-9_]{1,60}$"),
    "moralis_tokens": re.compile(r"^0x[0-9a-f]{40}$"),
}


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
    moralis_api_key: SecretStr | None = Field(default=None, description="turns Moralis on")
    glassnode_api_key: SecretStr | None = Field(default=None, description="turns Glassnode on")
    twitter_bearer_token: SecretStr | None = Field(
        default=None, description="a Twitter/X API v2 app bearer token; turns Twitter on"
    )
    reddit_client_id: SecretStr | None = Field(default=None, description="a Reddit app's id")
    reddit_client_secret: SecretStr | None = Field(
        default=None, description="the Reddit app's secret; with the id, turns Reddit on"
    )
    lunarcrush_api_key: SecretStr | None = Field(default=None, description="turns LunarCrush on")
    sentiment_assets: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("BTC", "ETH"),
        min_length=1,
        max_length=50,
        description="assets Twitter, LunarCrush and Glassnode are asked about, e.g. BTC,ETH",
    )
    reddit_subreddits: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("Bitcoin", "ethereum", "CryptoCurrency"),
        min_length=1,
        max_length=50,
        description="subreddits whose new posts are counted, e.g. Bitcoin,ethereum",
    )
    glassnode_metrics: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("addresses/active_count", "transactions/count"),
        min_length=1,
        max_length=50,
        description="Glassnode metric paths, e.g. addresses/active_count,transactions/count",
    )
    glassnode_resolution: Literal["10m", "1h", "24h", "1w", "1month"] = Field(
        default="24h", description="Glassnode's resolution (i=): 10m, 1h, 24h, 1w or 1month"
    )
    moralis_tokens: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(
            "0xdac17f958d2ee523a2206206994597c13d831ec7",  # USDT on Ethereum
            "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",  # USDC on Ethereum
        ),
        min_length=1,
        max_length=50,
        description="ERC-20 contract addresses whose transfers Moralis is asked for",
    )
    moralis_chain: str = Field(
        default="eth", pattern=r"^[a-z0-9]{2,20}$", description="Moralis chain, e.g. eth, bsc"
    )
    moralis_whale_threshold: Decimal = Field(
        default=Decimal(1_000_000),
        gt=0,
        le=Decimal("1e15"),
        allow_inf_nan=False,
        description="a transfer of at least this many tokens counts as a whale transfer",
    )
    sentiment_poll_seconds: float = Field(
        default=900, ge=1, le=86_400, description="seconds between sentiment polls (1..86400)"
    )
    onchain_poll_seconds: float = Field(
        default=3600, ge=1, le=86_400, description="seconds between on-chain polls (1..86400)"
    )
    collector_max_backoff: float = Field(
        default=900, ge=1, le=86_400, description="longest pause after failed polls, seconds"
    )
    collector_timeout: float = Field(
        default=10, gt=0, le=120, description="seconds a provider may take to answer"
    )
    twitter_api_url: str = Field(
        default="https://api.twitter.com",
        pattern=URL,
        description="Twitter/X API base URL (or a local server)",
    )
    reddit_auth_url: str = Field(
        default="https://www.reddit.com",
        pattern=URL,
        description="where Reddit's OAuth token is asked for",
    )
    reddit_api_url: str = Field(
        default="https://oauth.reddit.com", pattern=URL, description="Reddit's OAuth API base URL"
    )
    lunarcrush_api_url: str = Field(
        default="https://lunarcrush.com", pattern=URL, description="LunarCrush API base URL"
    )
    glassnode_api_url: str = Field(
        default="https://api.glassnode.com", pattern=URL, description="Glassnode API base URL"
    )
    moralis_api_url: str = Field(
        default="https://deep-index.moralis.io", pattern=URL, description="Moralis EVM API base URL"
    )

    @field_validator("market_data_symbols", mode="before")
    @classmethod
    def _symbols(cls, value: object) -> object:
        parts = _split(value)
        if isinstance(parts, list | tuple):  # once each: a repeat would stream twice, fetch twice
            return tuple(dict.fromkeys(normalise_symbol(str(part)) for part in parts))
        return parts

    @field_validator(*LISTS, mode="before")
    @classmethod
    def _lists(cls, value: object, info: ValidationInfo) -> object:
        parts = _split(value)
        if not isinstance(parts, list | tuple):
            return parts
        pattern = LISTS[str(info.field_name)]
        items = [str(p).upper() if info.field_name == "sentiment_assets" else str(p) for p in parts]
        items = [item.lower() if info.field_name == "moralis_tokens" else item for item in items]
        for item in items:
            if not pattern.match(item):
                raise ValueError(f"{item[:60]!r} does not match {pattern.pattern}")
        return tuple(items)

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

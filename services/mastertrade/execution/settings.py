"""Settings of order_executor: TRADING_ENVIRONMENT and PAPER_TRADING_INITIAL_BALANCE (the model's
`TradingSettings`), the paper fee and slippage (its `CostSettings`, which the backtests charge
too), Binance keys and endpoint."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, SecretStr, model_validator

from mastertrade.core.settings import AccountSettings, ServiceSettings
from mastertrade_model.settings import CostSettings, TradingSettings


class ExecutionSettings(ServiceSettings, TradingSettings, CostSettings, AccountSettings):
    """Paper trading unless TRADING_ENVIRONMENT=live, which needs the Binance key and secret."""

    max_price_deviation_pct: Decimal = Field(
        default=Decimal("0.02"), ge=0, le=1,
        description="no market buy fills more than this fraction above the price the risk "
        "manager sized it at: refused when the ask is beyond it, and sent to Binance as a LIMIT "
        "IOC at it (live), 0 <= x <= 1, e.g. 0.02 (0: off)",
    )  # fmt: skip
    price_max_age_seconds: float = Field(
        default=60.0, ge=0, le=86400,
        description="refuse to fill against a quote older than this many seconds (0: any age)",
    )  # fmt: skip
    order_poll_seconds: float = Field(
        default=0.5, gt=0, le=60,
        description="paper: how often resting limit orders and equity are re-checked, in seconds",
    )  # fmt: skip
    binance_poll_seconds: float = Field(
        default=10.0, gt=0, le=300,
        description="live: how often orders in flight are queried and the account revalued, in "
        "seconds (the user-data stream brings fills as they happen; each poll costs 20 request "
        "weight plus 4 per order in flight, of Binance's 6000 a minute)",
    )  # fmt: skip
    binance_api_key: SecretStr | None = Field(
        default=None, description="a Binance API key (required when TRADING_ENVIRONMENT=live)"
    )
    binance_api_secret: SecretStr | None = Field(
        default=None, description="a Binance secret (required when TRADING_ENVIRONMENT=live)"
    )
    binance_base_url: str = Field(
        default="https://api.binance.com", pattern=r"^https?://",
        description="Binance's REST base URL, e.g. https://api.binance.com",
    )  # fmt: skip
    binance_ws_api_url: str = Field(
        default="wss://ws-api.binance.com:443/ws-api/v3", pattern=r"^wss?://",
        description="Binance's WebSocket API endpoint, on which the user-data stream is "
        "subscribed (userDataStream.subscribe.signature), e.g. "
        "wss://ws-api.binance.com:443/ws-api/v3 (testnet: "
        "wss://ws-api.testnet.binance.vision/ws-api/v3)",
    )  # fmt: skip
    binance_recv_window: int = Field(
        default=5000, ge=1, le=60000, description="recvWindow of signed requests, ms (<= 60000)"
    )
    binance_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, description="timeout of one Binance request, in seconds"
    )

    @model_validator(mode="after")
    def _live_needs_keys(self) -> ExecutionSettings:
        if self.trading_environment == "live" and not (
            self.binance_api_key and self.binance_api_secret
        ):
            raise ValueError(
                "TRADING_ENVIRONMENT=live needs BINANCE_API_KEY and BINANCE_API_SECRET"
            )
        return self

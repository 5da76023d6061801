"""Settings of order_executor: TRADING_ENVIRONMENT and PAPER_TRADING_INITIAL_BALANCE (defined in
the model's `TradingSettings`), and the Binance keys."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from mastertrade.core.settings import ServiceSettings
from mastertrade_model.settings import TradingSettings


class ExecutionSettings(ServiceSettings, TradingSettings):
    """Paper trading unless TRADING_ENVIRONMENT=live, which needs the Binance key and secret."""

    binance_api_key: SecretStr | None = Field(
        default=None, description="a Binance API key (required when TRADING_ENVIRONMENT=live)"
    )
    binance_api_secret: SecretStr | None = Field(
        default=None, description="a Binance secret (required when TRADING_ENVIRONMENT=live)"
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

"""Settings of order_executor: TRADING_ENVIRONMENT, PAPER_TRADING_INITIAL_BALANCE, Binance keys."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from mastertrade.core.settings import ServiceSettings


class ExecutionSettings(ServiceSettings):
    """Paper trading unless TRADING_ENVIRONMENT=live, which needs the Binance key and secret."""

    trading_environment: Literal["paper", "live"] = Field(
        default="paper", description="paper or live"
    )
    paper_trading_initial_balance: Decimal = Field(
        default=Decimal(10000),
        gt=0,
        max_digits=20,
        description="a positive amount of USDT, e.g. 10000",
    )
    binance_api_key: SecretStr | None = Field(
        default=None, description="a Binance API key (required when TRADING_ENVIRONMENT=live)"
    )
    binance_api_secret: SecretStr | None = Field(
        default=None, description="a Binance secret (required when TRADING_ENVIRONMENT=live)"
    )

    @field_validator("trading_environment", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _live_needs_keys(self) -> ExecutionSettings:
        if self.trading_environment == "live" and not (
            self.binance_api_key and self.binance_api_secret
        ):
            raise ValueError(
                "TRADING_ENVIRONMENT=live needs BINANCE_API_KEY and BINANCE_API_SECRET"
            )
        return self

"""Settings of risk_manager: its limits and TRADING_ENVIRONMENT (defined once in the model's
`RiskSettings` and `TradingSettings`), QUOTE_ASSET (the account's asset, as the executor's), and
the admin key."""

from __future__ import annotations

from pydantic import Field

from mastertrade.core.admin_token import AdminTokenHash
from mastertrade.core.settings import AccountSettings, ServiceSettings
from mastertrade.risk.domain import RiskLimits
from mastertrade_model.settings import RiskSettings as RiskGroup
from mastertrade_model.settings import TradingSettings


class RiskSettings(ServiceSettings, RiskGroup, TradingSettings, AccountSettings):
    """The seed's limits: 20 % per position, 15 % drawdown, circuit breaker on."""

    risk_admin_api_key_sha256: AdminTokenHash = Field(
        default=None,
        description="the SHA-256 (64 lower-case hex digits) of the admin bearer token, "
        "e.g. from `printf %s TOKEN | sha256sum`",
    )

    def limits(self) -> RiskLimits:
        return RiskLimits(
            max_position_size_pct=self.max_position_size_pct,
            max_portfolio_drawdown_pct=self.max_portfolio_drawdown_pct,
            circuit_breaker_enabled=self.circuit_breaker_enabled,
            max_open_positions=self.max_open_positions,
            max_orders_per_minute=self.max_orders_per_minute,
            max_equity_age_seconds=self.max_equity_age_seconds,
            quote_asset=self.quote_asset,
        )

"""Settings of risk_manager: MAX_POSITION_SIZE_PCT, MAX_PORTFOLIO_DRAWDOWN_PCT, circuit breaker."""

from __future__ import annotations

from pydantic import Field

from mastertrade.core.settings import ServiceSettings
from mastertrade.risk.domain import RiskLimits


class RiskSettings(ServiceSettings):
    """The seed's limits: 20 % per position, 15 % drawdown, circuit breaker on."""

    max_position_size_pct: float = Field(
        default=0.20, gt=0, le=1, description="a fraction of the portfolio, 0 < x <= 1, e.g. 0.20"
    )
    max_portfolio_drawdown_pct: float = Field(
        default=0.15, gt=0, le=1, description="a fraction of the peak, 0 < x <= 1, e.g. 0.15"
    )
    circuit_breaker_enabled: bool = Field(default=True, description="true or false")

    def limits(self) -> RiskLimits:
        return RiskLimits(
            max_position_size_pct=self.max_position_size_pct,
            max_portfolio_drawdown_pct=self.max_portfolio_drawdown_pct,
            circuit_breaker_enabled=self.circuit_breaker_enabled,
        )

"""Settings of risk_manager: MAX_POSITION_SIZE_PCT, MAX_PORTFOLIO_DRAWDOWN_PCT and
CIRCUIT_BREAKER_ENABLED (defined in the model's `RiskSettings`)."""

from __future__ import annotations

from mastertrade.core.settings import ServiceSettings
from mastertrade.risk.domain import RiskLimits
from mastertrade_model.settings import RiskSettings as RiskGroup


class RiskSettings(ServiceSettings, RiskGroup):
    """The seed's limits: 20 % per position, 15 % drawdown, circuit breaker on."""

    def limits(self) -> RiskLimits:
        return RiskLimits(
            max_position_size_pct=float(self.max_position_size_pct),
            max_portfolio_drawdown_pct=float(self.max_portfolio_drawdown_pct),
            circuit_breaker_enabled=self.circuit_breaker_enabled,
        )

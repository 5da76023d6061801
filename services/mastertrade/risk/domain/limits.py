"""The limits every order is checked against (fractions of equity as Decimal)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from mastertrade.core.messages import Amount


class RiskLimits(BaseModel):
    """The seed's 20 % per position and 15 % drawdown, plus the rules the issue adds."""

    model_config = ConfigDict(frozen=True)

    max_position_size_pct: Amount = Field(default=Decimal("0.20"), gt=0, le=1)
    max_portfolio_drawdown_pct: Amount = Field(default=Decimal("0.15"), gt=0, le=1)
    circuit_breaker_enabled: bool = True
    max_open_positions: int = Field(default=10, ge=1)
    max_orders_per_minute: int = Field(default=60, ge=1)
    max_equity_age_seconds: int = Field(default=60, ge=1)
    quantity_step: Amount = Field(default=Decimal("0.00000001"), gt=0)
    quote_asset: str = "USDT"  # the account's asset: equity is in it, only its pairs are bought

"""Settings of risk_manager: the seed's size, drawdown and breaker settings, plus the issue's
open-position, exposure and rate limits and the admin key."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from mastertrade.core.settings import ServiceSettings
from mastertrade.risk.domain import RiskLimits

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class RiskSettings(ServiceSettings):
    """The seed's limits: 20 % per position, 15 % drawdown, circuit breaker on."""

    max_position_size_pct: Decimal = Field(
        default=Decimal("0.20"), gt=0, le=1,
        description="a fraction of equity per order, 0 < x <= 1, e.g. 0.20",
    )  # fmt: skip
    max_portfolio_drawdown_pct: Decimal = Field(
        default=Decimal("0.15"), gt=0, le=1,
        description="a fraction of the equity peak, 0 < x <= 1, e.g. 0.15",
    )  # fmt: skip
    circuit_breaker_enabled: bool = Field(default=True, description="true or false")
    max_open_positions: int = Field(
        default=10, ge=1, le=1000, description="symbols held or being bought at once, 1 to 1000"
    )
    max_symbol_exposure_pct: Decimal = Field(
        default=Decimal("0.40"), gt=0, le=1,
        description="a fraction of equity held in one symbol, 0 < x <= 1, e.g. 0.40",
    )  # fmt: skip
    max_orders_per_minute: int = Field(
        default=60, ge=1, le=100000, description="orders approved per minute, 1 to 100000"
    )
    trading_environment: Literal["paper", "live"] = Field(
        default="paper", description="paper or live: whose account the limits apply to"
    )
    risk_admin_api_key_sha256: SecretStr | None = Field(
        default=None,
        description="the SHA-256 (64 lower-case hex digits) of the admin bearer token, "
        "e.g. from `printf %s TOKEN | sha256sum`",
    )

    @field_validator("max_position_size_pct", "max_portfolio_drawdown_pct",
                     "max_symbol_exposure_pct")  # fmt: skip
    @classmethod
    def _finite(cls, value: Decimal) -> Decimal:
        if not value.is_finite():
            raise ValueError("must be a finite number")
        return value

    @field_validator("risk_admin_api_key_sha256")
    @classmethod
    def _hex(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not SHA256_HEX.match(value.get_secret_value().strip().lower()):
            raise ValueError("must be 64 hex digits (a SHA-256), not the token itself")
        return value

    def limits(self) -> RiskLimits:
        return RiskLimits(
            max_position_size_pct=self.max_position_size_pct,
            max_portfolio_drawdown_pct=self.max_portfolio_drawdown_pct,
            circuit_breaker_enabled=self.circuit_breaker_enabled,
            max_open_positions=self.max_open_positions,
            max_symbol_exposure_pct=self.max_symbol_exposure_pct,
            max_orders_per_minute=self.max_orders_per_minute,
        )

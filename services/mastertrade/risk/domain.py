"""Pure risk rules: position size and drawdown limits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RiskLimits(BaseModel):
    """The limits an order is checked against."""

    model_config = ConfigDict(frozen=True)

    max_position_size_pct: float
    max_portfolio_drawdown_pct: float
    circuit_breaker_enabled: bool


class PositionCheck(BaseModel):
    """A proposed position: its value, the portfolio's value now and at its peak."""

    position_value: float = Field(ge=0)
    portfolio_value: float = Field(gt=0)
    portfolio_peak: float = Field(gt=0)


class Decision(BaseModel):
    """Whether the position is allowed, and every reason it is not."""

    approved: bool
    reasons: list[str]


def drawdown(value: float, peak: float) -> float:
    """Fall from the peak as a fraction of it (0 when at or above the peak)."""
    return max(0.0, (peak - value) / peak)


def evaluate_position(check: PositionCheck, limits: RiskLimits) -> Decision:
    """Apply the size limit, and the drawdown limit when the circuit breaker is enabled."""
    reasons = []
    size = check.position_value / check.portfolio_value
    if size > limits.max_position_size_pct:
        reasons.append(
            f"position is {size:.2%} of the portfolio, above {limits.max_position_size_pct:.2%}"
        )
    fall = drawdown(check.portfolio_value, check.portfolio_peak)
    if limits.circuit_breaker_enabled and fall >= limits.max_portfolio_drawdown_pct:
        reasons.append(
            f"drawdown {fall:.2%} reached {limits.max_portfolio_drawdown_pct:.2%}: "
            "circuit breaker open"
        )
    return Decision(approved=not reasons, reasons=reasons)

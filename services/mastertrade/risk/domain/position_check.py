"""The stateless "would this position be allowed?" check behind POST /api/v1/check."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from mastertrade.core.amounts import exact_arithmetic
from mastertrade.core.messages import Amount
from mastertrade.risk.domain.limits import RiskLimits
from mastertrade.risk.domain.rules import drawdown, fell_beyond


class PositionCheck(BaseModel):
    """A proposed position: its value, the portfolio's value now and at its peak."""

    model_config = ConfigDict(extra="forbid")

    position_value: Amount = Field(ge=0)
    portfolio_value: Amount = Field(gt=0)
    portfolio_peak: Amount = Field(gt=0)


class Decision(BaseModel):
    """Whether the position is allowed, and every reason it is not."""

    approved: bool
    reasons: list[str]


def evaluate_position(check: PositionCheck, limits: RiskLimits) -> Decision:
    """Apply the size limit, and the drawdown limit when the circuit breaker is enabled."""
    reasons = []
    size = check.position_value / check.portfolio_value  # for the message: judged exactly
    with exact_arithmetic():
        too_large = check.position_value > limits.max_position_size_pct * check.portfolio_value
    if too_large:
        reasons.append(
            f"position is {size:.2%} of the portfolio, above {limits.max_position_size_pct:.2%}"
        )
    peak = max(check.portfolio_peak, check.portfolio_value)
    fall = drawdown(check.portfolio_value, peak)
    limit = limits.max_portfolio_drawdown_pct
    if limits.circuit_breaker_enabled and fell_beyond(check.portfolio_value, peak, limit):
        reasons.append(
            f"drawdown {fall:.2%} reached {limits.max_portfolio_drawdown_pct:.2%}: "
            "circuit breaker open"
        )
    return Decision(approved=not reasons, reasons=reasons)

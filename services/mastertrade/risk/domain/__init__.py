"""Pure risk rules on Decimal: no I/O, no framework; the risk manager's adapters feed them."""

from mastertrade.risk.domain.limits import RiskLimits
from mastertrade.risk.domain.position_check import Decision, PositionCheck, evaluate_position
from mastertrade.risk.domain.rules import (
    OrderRequest,
    Outcome,
    RiskContext,
    RiskDecision,
    assess_breaker,
    decide,
    drawdown,
    is_dust,
)

__all__ = [
    "Decision",
    "OrderRequest",
    "Outcome",
    "PositionCheck",
    "RiskContext",
    "RiskDecision",
    "RiskLimits",
    "assess_breaker",
    "decide",
    "drawdown",
    "evaluate_position",
    "is_dust",
]

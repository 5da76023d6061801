"""HTTP routes of risk_manager."""

from __future__ import annotations

from fastapi import APIRouter, Request

from mastertrade.risk.domain import Decision, PositionCheck, RiskLimits, evaluate_position
from mastertrade.risk.settings import RiskSettings

router = APIRouter(prefix="/api/v1", tags=["risk"])


def _limits(request: Request) -> RiskLimits:
    settings: RiskSettings = request.app.state.settings
    return settings.limits()


@router.get("/limits")
async def limits(request: Request) -> RiskLimits:
    """The limits in force."""
    return _limits(request)


@router.post("/check")
async def check(request: Request, proposal: PositionCheck) -> Decision:
    """Would a position of this size be allowed now?"""
    return evaluate_position(proposal, _limits(request))

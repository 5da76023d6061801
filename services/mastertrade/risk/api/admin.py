"""Admin routes: reset the circuit breaker, set the kill switch (bearer token, see auth.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, StrictBool

from mastertrade.core.deps import RuntimeDep
from mastertrade.risk.adapters.state import apply_breaker_reset, apply_kill_switch
from mastertrade.risk.api.auth import AdminDep
from mastertrade.risk.settings import RiskSettings

router = APIRouter(prefix="/api/v1/admin", tags=["risk admin"])


class KillSwitch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: StrictBool  # true or false: a switch that stops trading takes no "yes" or 1


def _environment(request: Request) -> str:
    settings: RiskSettings = request.app.state.settings
    return settings.trading_environment


@router.post("/circuit-breaker/reset")
async def reset_breaker(request: Request, runtime: RuntimeDep, who: AdminDep) -> dict[str, Any]:
    """Close the breaker; the equity peak restarts from the current equity. A breaker that is
    closed is left as it is, its peak with it (a repeated call changes nothing)."""
    return await apply_breaker_reset(runtime.pool, _environment(request), who)


@router.post("/kill-switch")
async def kill_switch(
    request: Request, runtime: RuntimeDep, who: AdminDep, body: KillSwitch
) -> dict[str, Any]:
    """Stop every order (enabled=true) or allow them again; setting it as it is changes
    nothing, and alerts nobody."""
    return await apply_kill_switch(runtime.pool, _environment(request), body.enabled, who)

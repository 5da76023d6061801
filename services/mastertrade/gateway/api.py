"""HTTP routes of api_gateway."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from mastertrade.core.upstream import fetch_all_health
from mastertrade.gateway.settings import GatewaySettings

router = APIRouter(prefix="/api/v1", tags=["gateway"])


@router.get("/services")
async def services(request: Request) -> dict[str, dict[str, Any]]:
    """Health of every service behind the gateway."""
    settings: GatewaySettings = request.app.state.settings
    return await fetch_all_health(settings.upstreams, timeout=settings.dependency_timeout)

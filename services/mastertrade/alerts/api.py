"""HTTP routes of alert_system."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from mastertrade.alerts.settings import AlertSettings
from mastertrade.core.deps import RuntimeDep

router = APIRouter(prefix="/api/v1", tags=["alerts"])

ALERTS_QUERY = """
SELECT id, severity, title, message, channel, status, created_at
FROM alerts ORDER BY created_at DESC LIMIT $1
"""


@router.get("/channels")
async def channels(request: Request) -> dict[str, bool]:
    """Which notification channels are configured."""
    settings: AlertSettings = request.app.state.settings
    return settings.channels()


@router.get("/alerts")
async def alerts(
    runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict[str, Any]]:
    """The latest alerts."""
    rows = await runtime.pool.fetch(ALERTS_QUERY, limit)
    return [dict(row) for row in rows]

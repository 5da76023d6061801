"""Routes of alert_system: channels, history, a test alert, Alertmanager's webhook."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from mastertrade.alerts.adapters.store import fetch_history
from mastertrade.alerts.domain.events import AlertmanagerWebhook, build_from_alertmanager
from mastertrade.alerts.service import AlertService
from mastertrade.alerts.settings import AlertSettings
from mastertrade.core.deps import RuntimeDep
from mastertrade.core.messages import AlertEvent

router = APIRouter(prefix="/api/v1", tags=["alerts"])


class TestAlert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str | None = Field(default=None, description="one channel, or every configured one")
    message: str = Field(default="This is a test alert from MasterTrade.", max_length=4000)
    severity: Literal["info", "warning", "critical"] = "info"


def _service(request: Request) -> AlertService:
    service: AlertService = request.app.state.alerts
    return service


@router.get("/channels")
async def channels(request: Request) -> dict[str, bool]:
    """Which notification channels are configured."""
    settings: AlertSettings = request.app.state.settings
    return settings.channels()


@router.get("/alerts")
async def alerts(
    runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict[str, Any]]:
    """The latest alerts, each with its deliveries per channel."""
    return await fetch_history(runtime.pool, limit)


@router.post("/alerts/test", status_code=202)
async def send_test(request: Request, body: TestAlert) -> dict[str, Any]:
    """Send a test alert on one channel or all; delivery runs in the background."""
    service = _service(request)
    if body.channel is not None and body.channel not in service.channels:
        configured = ", ".join(sorted(service.channels)) or "none"
        raise HTTPException(422, f"channel {body.channel!r} is not configured ({configured})")
    alert = AlertEvent(
        kind="test", severity=body.severity, title="Test alert", message=body.message, source="api"
    )
    alert_id = await service.raise_alert(alert, only=body.channel)
    return {
        "id": alert_id,
        "channels": [body.channel] if body.channel else sorted(service.channels),
    }


@router.post("/alertmanager", status_code=202)
async def alertmanager(request: Request, body: AlertmanagerWebhook) -> dict[str, Any]:
    """Alertmanager's webhook receiver (`webhook_configs: - url: .../api/v1/alertmanager`)."""
    service = _service(request)
    ids = [await service.raise_alert(alert) for alert in build_from_alertmanager(body)]
    return {"alerts": ids}

"""Routes of alert_system: channels, status, history, Alertmanager's webhook (the test alert
is an admin route, api/admin.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from mastertrade.alerts.adapters.store import fetch_history
from mastertrade.alerts.daily_report import DailyReporter
from mastertrade.alerts.domain.events import AlertmanagerWebhook, build_from_alertmanager
from mastertrade.alerts.service import AlertService
from mastertrade.alerts.settings import AlertSettings
from mastertrade.core.deps import RuntimeDep

router = APIRouter(prefix="/api/v1", tags=["alerts"])


def _service(request: Request) -> AlertService:
    service: AlertService = request.app.state.alerts
    return service


@router.get("/channels")
async def channels(request: Request) -> dict[str, bool]:
    """Which notification channels are on (configured, and their configuration usable:
    /api/v1/status says why one is off)."""
    settings: AlertSettings = request.app.state.settings
    on = _service(request).channels
    return {name: name in on for name in settings.channels()}


@router.get("/status")
async def status(request: Request) -> dict[str, Any]:
    """Each configured channel, on or off and why; the daily report's time (UTC), the next one,
    and the last one this replica handled (null while none, or when reports are off)."""
    reporter: DailyReporter | None = request.app.state.daily_report
    off = {"time": None, "next": None, "checked": None}
    return {
        "channels": _service(request).channel_status(),
        "daily_report": reporter.status() if reporter else off,
    }


@router.get("/alerts")
async def alerts(
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    kind: Annotated[
        str | None,
        Query(max_length=64, pattern=r"^[a-z0-9_.-]+$", description="e.g. test, daily_report"),
    ] = None,
) -> list[dict[str, Any]]:
    """The latest alerts (of one kind when given), each with its deliveries per channel."""
    return await fetch_history(runtime.pool, limit, kind)


@router.post("/alertmanager", status_code=202)
async def alertmanager(request: Request, body: AlertmanagerWebhook) -> dict[str, Any]:
    """Alertmanager's webhook receiver (`webhook_configs: - url: .../api/v1/alertmanager`)."""
    service = _service(request)
    ids = [await service.raise_alert(alert) for alert in build_from_alertmanager(body)]
    return {"alerts": ids}

"""The alert system's admin route: a test alert, which reaches real people (SMS, e-mail), so it
needs the admin token (api/auth.py). It sits under `/api/v1/admin/` because the API gateway
passes a caller's `Authorization` on only to admin routes (after checking its admin scope)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from mastertrade.alerts.api.auth import AdminDep
from mastertrade.alerts.service import AlertService
from mastertrade.alerts.settings import CHANNEL_SETTINGS
from mastertrade.core.messages import AlertEvent, StorableText

admin_router = APIRouter(prefix="/api/v1/admin", tags=["alerts admin"])


class TestAlert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str | None = Field(
        default=None, max_length=32, pattern=r"^[a-z]+$",
        description="one channel (e.g. slack), or every configured one",
    )  # fmt: skip
    message: StorableText = Field(default="This is a test alert from MasterTrade.", max_length=4000)
    severity: Literal["info", "warning", "critical"] = "info"


def _not_on(service: AlertService, channel: str) -> str:
    if channel in service.channel_errors:
        return f"channel {channel!r} is off: {service.channel_errors[channel]}"
    configured = ", ".join(sorted(service.channels)) or "none"
    return f"channel {channel!r} is not configured ({configured})"


def _none_on(service: AlertService) -> str:
    """Why no channel is on, and how to turn one on."""
    if service.channel_errors:
        off = "; ".join(f"{name} is off: {error}" for name, error in service.channel_errors.items())
        return f"no alert channel is on: {off}"
    each = "; ".join(f"{name}: {', '.join(names)}" for name, names in CHANNEL_SETTINGS.items())
    return (
        "no alert channel is configured: set one, e.g. TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID "
        f"(the settings each channel needs: {each})"
    )


@admin_router.post("/alerts/test", status_code=202)
async def send_test(request: Request, body: TestAlert, caller: AdminDep) -> dict[str, Any]:
    """Send a test alert on one channel or all (kind `test` in the history, the caller as its
    source); delivery runs in the background. 422, storing nothing, when the channel asked
    for (or, asked for none, every channel) is off."""
    service: AlertService = request.app.state.alerts
    if not service.channels:  # stored, it would be an alert failed with no delivery to show
        raise HTTPException(422, _none_on(service))
    if body.channel is not None and body.channel not in service.channels:
        raise HTTPException(422, _not_on(service, body.channel))
    alert = AlertEvent(
        kind="test",
        severity=body.severity,
        title="Test alert",
        message=body.message,
        source=f"api ({caller})",
    )
    alert_id = await service.raise_alert(alert, only=body.channel)
    return {
        "id": alert_id,
        "channels": [body.channel] if body.channel else sorted(service.channels),
    }

"""Alertmanager's API v2 receiver: Prometheus sends its alerts straight to the alert system.

`POST /api/v2/alerts` takes what Prometheus' `alerting.alertmanagers` (api_version v2) posts:
a JSON list of alerts. Each becomes an alert sent through every configured channel once per
firing and once when resolved (Prometheus re-sends firing alerts every minute: those repeats
are deduplicated). docs/monitoring.md says why no Alertmanager runs in between.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Request

from mastertrade.alerts.domain.events import PostableAlert, build_from_postable
from mastertrade.alerts.service import AlertService

alertmanager_router = APIRouter(prefix="/api/v2", tags=["alertmanager"])
MAX_ALERTS = 256
"""Alerts in one post: Prometheus sends at most 256 at a time (its notifier's batch size)."""


@alertmanager_router.post("/alerts")
async def post_alerts(
    request: Request, body: Annotated[list[PostableAlert], Body(max_length=MAX_ALERTS)]
) -> dict[str, list[int | None]]:
    """Alerts from Prometheus (Alertmanager API v2); a repeat answers None for its id."""
    service: AlertService = request.app.state.alerts
    events = build_from_postable(body, datetime.now(UTC))
    return {"alerts": [await service.raise_alert(event) for event in events]}

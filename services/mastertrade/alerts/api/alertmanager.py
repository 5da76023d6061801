"""Alertmanager's API v2 receiver: Prometheus sends its alerts straight to the alert system.

`POST /api/v2/alerts` takes what Prometheus' `alerting.alertmanagers` (api_version v2) posts:
a JSON list of alerts. Each becomes an alert sent through every configured channel once per
firing and once when resolved (Prometheus re-sends firing alerts every minute: those repeats
are deduplicated). docs/monitoring.md says why no Alertmanager runs in between.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request

from mastertrade.alerts.domain.events import PostableAlert, build_from_postable
from mastertrade.alerts.service import AlertService

alertmanager_router = APIRouter(prefix="/api/v2", tags=["alertmanager"])


@alertmanager_router.post("/alerts")
async def post_alerts(request: Request, body: list[PostableAlert]) -> dict[str, list[int | None]]:
    """Alerts from Prometheus (Alertmanager API v2); a repeat answers None for its id."""
    service: AlertService = request.app.state.alerts
    events = build_from_postable(body, datetime.now(UTC))
    return {"alerts": [await service.raise_alert(event) for event in events]}

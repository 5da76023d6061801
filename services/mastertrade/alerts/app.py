"""create_app for alert_system: events in, alerts stored and delivered on every channel."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import FastAPI

from mastertrade.alerts.api import alertmanager_router, router
from mastertrade.alerts.domain.events import build_from_message
from mastertrade.alerts.service import AlertService
from mastertrade.alerts.settings import AlertSettings
from mastertrade.catalog import find_service
from mastertrade.core.app import build_service_app
from mastertrade.core.background import add_background
from mastertrade.core.retry import retry_transient

Settings = AlertSettings
QUEUE = "alert_system.events"
logger = logging.getLogger("mastertrade.alerts")


def create_app(settings: AlertSettings) -> FastAPI:
    """The app, its connections opened in the lifespan."""
    service = AlertService(settings)

    async def handle(payload: dict[str, Any]) -> None:
        alert = build_from_message(payload)
        await retry_transient(lambda: service.raise_alert(alert), "storing an alert")

    app = build_service_app(
        find_service("alert_system"), settings, [router, alertmanager_router], {QUEUE: handle}
    )
    service.runtime = app.state.runtime
    app.state.alerts = service

    async def resume() -> None:
        resumed = await retry_transient(service.resume, "resuming deliveries")
        logger.info("resumed %d pending deliveries", resumed)

    async def start() -> list[asyncio.Task[None]]:
        return [asyncio.create_task(resume())]

    add_background(app, start, service.close)
    return app

"""create_app for alert_system: events in, alerts stored and delivered on every channel, the
daily report (`app.state.daily_report`, None when ALERT_DAILY_REPORT_TIME is off), and the
history's retention (retention.py)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from mastertrade.alerts.api import admin_router, alertmanager_router, router
from mastertrade.alerts.daily_report import DailyReporter
from mastertrade.alerts.domain.events import build_from_message, message_digest
from mastertrade.alerts.retention import keep_history
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
        alert, digest = build_from_message(payload), message_digest(payload)
        await retry_transient(
            lambda: service.raise_alert(alert, message_digest=digest), "storing an alert"
        )

    routers = [router, admin_router, alertmanager_router]
    app = build_service_app(find_service("alert_system"), settings, routers, {QUEUE: handle})
    service.runtime = app.state.runtime
    app.state.alerts = service
    at = settings.daily_report_time()
    settle = timedelta(seconds=settings.alert_daily_report_settle_seconds)
    reporter = DailyReporter(service, at, settle) if at is not None else None
    app.state.daily_report = reporter

    async def start() -> list[asyncio.Task[None]]:
        days = settings.alert_history_days
        tasks = [
            asyncio.create_task(service.keep_deliveries()),
            asyncio.create_task(keep_history(lambda: service.live.pool, days)),
        ]
        if reporter is not None:
            tasks.append(asyncio.create_task(reporter.run()))
        return tasks

    # deliveries still going stop and hand their leases over while the database is open
    app.state.runtime.on_drained.append(service.dispatcher.stop)
    add_background(app, start, service.close)
    return app

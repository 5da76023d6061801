"""create_app for monitoring_ui: the routes, the static page, and the poller in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from mastertrade.catalog import find_service
from mastertrade.core.app import build_service_app
from mastertrade.core.background import stop_task
from mastertrade.ui.api import STATIC_DIR, router
from mastertrade.ui.domain.equity import EquityHistory
from mastertrade.ui.live import LiveFeed
from mastertrade.ui.settings import UiSettings
from mastertrade.ui.snapshot import collect_snapshot
from mastertrade.ui.upstreams import Upstreams

Settings = UiSettings


def create_app(settings: UiSettings) -> FastAPI:
    """The app (no connections of its own: the UI only calls other services over HTTP)."""
    app = build_service_app(find_service("monitoring_ui"), settings, [router])
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    history = EquityHistory(settings.ui_equity_points)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = httpx.Timeout(settings.dependency_timeout)
        async with inner(app), httpx.AsyncClient(timeout=timeout) as client:
            key = settings.ui_gateway_api_key
            gateway_key = key.get_secret_value() if key is not None else None
            upstreams = Upstreams(settings.upstreams, client, gateway_key)

            async def collect() -> dict[str, object]:
                return await collect_snapshot(upstreams, history, settings.ui_rows)

            feed = LiveFeed(collect, settings.ui_poll_seconds)
            app.state.upstreams, app.state.feed = upstreams, feed
            poller = asyncio.create_task(feed.run())
            try:
                yield
            finally:
                await stop_task(poller)

    app.router.lifespan_context = lifespan
    return app

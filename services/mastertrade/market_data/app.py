"""create_app for market_data_service: the platform app plus the market data collectors.

The collectors start after the platform's connections (in the same lifespan) and stop before
them, so the last buffered events are written while PostgreSQL, Redis and RabbitMQ are still
open. /health carries a `market_data` section saying which source and collectors are on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from mastertrade.catalog import find_service
from mastertrade.core.app import build_service_app
from mastertrade.core.runtime import Runtime
from mastertrade.market_data.api import router
from mastertrade.market_data.collectors import MarketDataCollectors
from mastertrade.market_data.settings import MarketDataSettings

Settings = MarketDataSettings


def create_app(settings: MarketDataSettings) -> FastAPI:
    """The app, its connections opened and its collectors started in the lifespan."""
    app = build_service_app(find_service("market_data_service"), settings, [router])
    runtime: Runtime = app.state.runtime
    collectors = MarketDataCollectors(settings, runtime)
    runtime.health_details["market_data"] = collectors.status
    app.state.collectors = collectors
    platform_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with platform_lifespan(app):
            collectors.start()
            try:
                yield
            finally:
                await collectors.stop()

    app.router.lifespan_context = lifespan
    return app

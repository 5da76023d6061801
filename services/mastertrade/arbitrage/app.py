"""create_app for arbitrage_service: the ticker consumer, and the second venue's poller."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from mastertrade.arbitrage.api import router
from mastertrade.arbitrage.service import ArbitrageService
from mastertrade.arbitrage.settings import ArbitrageSettings
from mastertrade.arbitrage.venue import VenuePoller
from mastertrade.catalog import find_service
from mastertrade.core.app import build_service_app
from mastertrade.core.background import stop_task

Settings = ArbitrageSettings
TICKERS_QUEUE = "arbitrage_service.tickers"


def create_app(settings: ArbitrageSettings) -> FastAPI:
    """The app, its connections opened and its consumer started in the lifespan."""
    service = ArbitrageService(settings.detector(), settings.arbitrage_report_interval)
    app = build_service_app(
        find_service("arbitrage_service"), settings, [router], {TICKERS_QUEUE: service.handle}
    )
    service.bind(app.state.runtime)
    app.state.arbitrage = service
    if settings.arbitrage_second_venue_url:
        _add_second_venue(app, settings, service)
    return app


def _add_second_venue(app: FastAPI, settings: ArbitrageSettings, service: ArbitrageService) -> None:
    inner = app.router.lifespan_context
    symbols = service.detector.quote_asset.keys()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            inner(app),
            httpx.AsyncClient(
                base_url=str(settings.arbitrage_second_venue_url),
                timeout=settings.dependency_timeout,
            ) as client,
        ):
            poller = VenuePoller(
                client,
                settings.arbitrage_second_venue_name,
                symbols,
                settings.arbitrage_second_venue_poll,
                service.on_quote,
            )
            task = asyncio.create_task(poller.run(), name="second-venue")
            app.state.venue_poller = poller
            try:
                yield
            finally:
                await stop_task(task)

    app.router.lifespan_context = lifespan

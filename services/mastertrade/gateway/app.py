"""create_app for api_gateway: its routes, the proxy, and the pooled upstream clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from mastertrade.catalog import find_service
from mastertrade.core.app import build_service_app
from mastertrade.gateway.api import proxy_router, router
from mastertrade.gateway.routing import Gateway
from mastertrade.gateway.settings import GatewaySettings

Settings = GatewaySettings


def create_app(settings: GatewaySettings) -> FastAPI:
    """The app; connections and the upstream client opened in the lifespan."""
    app = build_service_app(find_service("api_gateway"), settings, [router, proxy_router])
    gateway = Gateway(settings, app.state.runtime)
    app.state.gateway = gateway
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with inner(app), gateway.new_client() as client:
            gateway.client, gateway.pool = client, gateway.open_pool()
            try:
                yield
            finally:
                pool, gateway.client, gateway.pool = gateway.pool, None, None
                await pool.close()

    app.router.lifespan_context = lifespan
    return app

"""create_app for api_gateway: its routes, the proxy, and the pooled upstream clients.

Proxied requests take `ProxyFastPath` (gateway/fastpath.py) ahead of FastAPI's routing. The
upstream client and pool, opened after the platform's start-up, are frozen out of the garbage
collector's reach too (`freeze_start_up_heap`, core/app.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware import Middleware

from mastertrade.catalog import find_service
from mastertrade.core.app import build_service_app, freeze_start_up_heap
from mastertrade.gateway.api import proxy_router, router
from mastertrade.gateway.fastpath import ProxyFastPath, owned_segments, proxy_route
from mastertrade.gateway.routing import Gateway
from mastertrade.gateway.settings import GatewaySettings

Settings = GatewaySettings


def create_app(settings: GatewaySettings) -> FastAPI:
    """The app; connections and the upstream client opened in the lifespan."""
    spec = find_service("api_gateway")
    app = build_service_app(spec, settings, [router, proxy_router])
    gateway = Gateway(settings, app.state.runtime)
    app.state.gateway = gateway
    paths = [spec.health_path, *(getattr(route, "path", "") for route in router.routes)]
    owned = owned_segments(paths)
    # appended, not added: the innermost of the app's middlewares, inside request id and metrics
    app.user_middleware.append(Middleware(
        ProxyFastPath, gateway=gateway, route=proxy_route(proxy_router), owned=owned,
        handlers=app.exception_handlers,
    ))  # fmt: skip
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with inner(app), gateway.new_client() as client:
            gateway.client, gateway.pool = client, gateway.open_pool()
            freeze_start_up_heap()
            try:
                yield
            finally:
                pool, gateway.client, gateway.pool = gateway.pool, None, None
                await pool.close()

    app.router.lifespan_context = lifespan
    return app

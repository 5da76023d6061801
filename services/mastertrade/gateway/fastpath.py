"""The proxy route served ahead of FastAPI's routing: `/api/<service>/<path>` straight to the
gateway.

Proxied requests are the gateway's hot path, and FastAPI's exception middleware, router,
endpoint wrapper and dependency solving cost a good part of the gateway's own CPU per request
(bench/README.md). `ProxyFastPath` sits where those begin, inside the shared request-id and
metrics middlewares (so every request still gets its X-Request-ID and is counted under the proxy
route's template), and hands a request the proxy route would take to `Gateway.handle` itself.
What it does not take goes on to FastAPI as before: the gateway's own routes (`/api/v1/...`),
the platform's, methods the route does not accept, and an app mounted under a root path. An
error `Gateway.handle` raises gets the app's own exception handler (e.g. 503 when Redis is down).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi.routing import APIRoute, APIRouter
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from mastertrade.gateway.routing import Gateway


def proxy_route(router: APIRouter) -> APIRoute:
    """The router's proxy route (`/api/{service}/{path:path}`), whose pattern the fast path uses."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.name == "proxy":
            return route
    raise LookupError("the router has no proxy route")


def owned_segments(paths: Iterable[str]) -> frozenset[str]:
    """`<service>` segments of routes matched before the proxy (`v1`, the gateway's own)."""
    return frozenset(path.split("/")[2] for path in paths if path.startswith("/api/"))


class ProxyFastPath:
    """ASGI middleware: answers the proxy route's requests without FastAPI's routing.

    `owned`: the `<service>` segments left to FastAPI; `handlers`: the app's exception handlers.
    """

    def __init__(
        self, app: ASGIApp, gateway: Gateway, route: APIRoute, owned: frozenset[str],
        handlers: Mapping[Any, Any],
    ) -> None:  # fmt: skip
        self.app = app
        self.gateway = gateway
        self.route = route
        self.owned = owned
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = self._params(scope)
        if params is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route  # the metrics label requests by its template
        scope["path_params"] = params
        request = Request(scope, receive)
        try:
            answer = await self.gateway.handle(request, params["service"])
        except Exception as error:
            handler = self._handler_for(error)
            if handler is None:
                raise
            answer = handler(request, error)
            if inspect.isawaitable(answer):  # Starlette allows plain functions as handlers too
                answer = await answer
        await answer(scope, receive, send)

    def _params(self, scope: Scope) -> dict[str, str] | None:
        """The path parameters when the proxy route would take the request, else None."""
        if scope["type"] != "http" or scope.get("root_path"):
            return None
        if scope["method"] not in (self.route.methods or ()):
            return None
        found = self.route.path_regex.match(scope["path"])
        if found is None or found["service"] in self.owned:
            return None
        return found.groupdict()

    def _handler_for(self, error: Exception) -> Any:
        """The app's handler for this error's type or its nearest base, as FastAPI picks it."""
        for kind in type(error).__mro__:
            if kind in self.handlers:
                return self.handlers[kind]
        return None

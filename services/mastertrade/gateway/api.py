"""HTTP routes of api_gateway: its own (services, aggregated health, keys) and the proxy.

Its own routes need what a proxied request of the same kind needs: the two health listings a
`read` key when GATEWAY_REQUIRE_KEY_FOR_READS, the key listing `admin`. The health listings
share one round of health checks among their callers (`health.SharedHealth`)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from mastertrade.core.upstream import fetch_health
from mastertrade.gateway.health import Listing
from mastertrade.gateway.routing import Gateway
from mastertrade.gateway.settings import routable_services

router = APIRouter(prefix="/api/v1", tags=["gateway"])
proxy_router = APIRouter(tags=["proxy"])
PROXY_METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def _all_health(gateway: Gateway) -> Listing:
    return await gateway.health.get(lambda: _check_all(gateway))


async def _check_all(gateway: Gateway) -> Listing:
    """Ask every configured service for its health, at once."""
    if gateway.client is None:
        return {}
    specs = [spec for spec in routable_services() if spec.name in gateway.upstreams]
    timeout = gateway.settings.dependency_timeout
    answers = await asyncio.gather(*(
        asyncio.wait_for(fetch_health(gateway.client, gateway.upstreams[s.name], s.health_path),
                         timeout)
        for s in specs
    ), return_exceptions=True)  # fmt: skip
    return {
        spec.name: answer
        if isinstance(answer, dict)
        else {"status": "unreachable", "url": gateway.upstreams[spec.name], "error": "timeout"}
        for spec, answer in zip(specs, answers, strict=True)
    }


async def refused_read(gateway: Gateway, request: Request) -> Response | None:
    """The answer refusing a read of the gateway's own routes when reads need a key (as a
    proxied read does), or None when it may go on."""
    reads_need_a_key = gateway.settings.gateway_require_key_for_reads
    answer = await gateway.admit_counted(request, "read" if reads_need_a_key else None)
    return answer if isinstance(answer, Response) else None


@router.get("/services", response_model=None)
async def services(request: Request) -> dict[str, dict[str, Any]] | Response:
    """Health of every service behind the gateway (a `read` key when reads need one)."""
    gateway = gateway_of(request)
    if answer := await refused_read(gateway, request):
        return answer
    return await _all_health(gateway)


@router.get("/health", summary="Aggregated health: 200 when every configured service is healthy")
async def aggregated_health(request: Request) -> Response:
    gateway = gateway_of(request)
    if answer := await refused_read(gateway, request):
        return answer
    found = await _all_health(gateway)
    healthy = all(info.get("status") == "healthy" for info in found.values())
    missing = sorted(s.name for s in routable_services() if s.name not in gateway.upstreams)
    body = {"status": "healthy" if healthy else "degraded", "services": found,
            "not_configured": missing}  # fmt: skip
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/keys", summary="The API keys the gateway knows (names and scopes); needs admin")
async def keys(request: Request) -> Response:
    gateway = gateway_of(request)
    if isinstance(answer := await gateway.admit_counted(request, "admin"), Response):
        return answer
    return JSONResponse([{"name": key.name, "scope": key.scope} for key in gateway.keys.listed()])


@proxy_router.api_route(
    "/api/{service}/{path:path}", methods=PROXY_METHODS, summary="Forward to a service"
)
async def proxy(request: Request, service: str, path: str) -> Response:
    del path  # forwarded from request.path_params as it came
    return await gateway_of(request).handle(request, service)

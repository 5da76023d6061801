"""HTTP routes of monitoring_ui: the dashboard page, its data (a snapshot, a live stream of
them), the upstreams' status, and the circuit breaker reset passed on through the gateway."""

from __future__ import annotations

import base64
import hashlib
import logging
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from mastertrade.core.upstream import fetch_all_health
from mastertrade.ui.live import LiveFeed
from mastertrade.ui.settings import UiSettings
from mastertrade.ui.upstreams import GATEWAY, Upstreams

logger = logging.getLogger("mastertrade.ui")
router = APIRouter(tags=["monitoring"])

STATIC_DIR = Path(__file__).with_name("static")
RESET_PATH = "/api/risk-manager/api/v1/admin/circuit-breaker/reset"
STYLESHEET = '<link rel="stylesheet" href="/static/app.css">'


@cache
def build_page() -> tuple[str, dict[str, str]]:
    """The page and its headers, built once: the stylesheet inlined so the first paint needs
    one round trip, allowed by its hash; everything else the page loads comes from this server
    (no CDN, no other inline script or style)."""
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    css = (STATIC_DIR / "app.css").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    headers = {
        "Content-Security-Policy": f"default-src 'self'; style-src 'self' 'sha256-{digest}'; "
        "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }
    return html.replace(STYLESHEET, f"<style>{css}</style>"), headers


def feed_of(request: Request) -> LiveFeed:
    feed: LiveFeed = request.app.state.feed
    return feed


@router.get("/", include_in_schema=False)
async def dashboard() -> HTMLResponse:
    """The dashboard page (its scripts are under /static)."""
    html, headers = build_page()
    return HTMLResponse(html, headers=headers)


@router.get("/api/status")
async def status(request: Request) -> dict[str, dict[str, Any]]:
    """Health of the services the UI reads through (the API gateway, the data access API)."""
    settings: UiSettings = request.app.state.settings
    return await fetch_all_health(settings.upstreams, timeout=settings.dependency_timeout)


@router.get("/api/snapshot", summary="Everything the dashboard shows, each part ok or failed")
async def snapshot(request: Request) -> dict[str, Any]:
    return await feed_of(request).current()


@router.get("/api/events", summary="Server-sent events: a snapshot now, then each new one")
async def events(request: Request) -> StreamingResponse:
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        feed_of(request).stream(), media_type="text/event-stream", headers=headers
    )


def is_key_shaped(token: str) -> bool:
    """Could `token` be an API key: printable ASCII, at most 256 characters (a header can carry
    other bytes, which could not be sent on: the answer would be a 500)."""
    return 0 < len(token) <= 256 and token.isascii() and token.isprintable()


@router.post(
    "/api/circuit-breaker/reset",
    summary="Reset the risk manager's circuit breaker through the gateway with the caller's key",
)
async def reset_breaker(request: Request) -> Response:
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not is_key_shaped(token.strip()):
        return JSONResponse(
            {"detail": "paste an API key with scope admin; it is sent as "
                       "'Authorization: Bearer <key>'"},
            status_code=401,
        )  # fmt: skip
    upstreams: Upstreams = request.app.state.upstreams
    answer = await upstreams.request(
        GATEWAY, "POST", RESET_PATH, headers={"Authorization": f"Bearer {token.strip()}"}
    )
    code = answer.status or (200 if answer.ok else 502)
    logger.info("circuit breaker reset through the gateway: answered %s", code)
    if not answer.ok:
        return JSONResponse({"detail": answer.error}, status_code=code)
    await feed_of(request).refresh()
    return JSONResponse({"detail": "circuit breaker reset", "state": answer.data})

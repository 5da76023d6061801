"""Asking other MasterTrade services for their health over HTTP (gateway and monitoring UI)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx


async def _get_once_more_on_a_dropped_connection(
    client: httpx.AsyncClient, url: str
) -> httpx.Response:
    """GET, and once more if the connection failed without an answer (a pooled keep-alive
    connection closed by a Pod that is stopping, or a connection refused while its endpoint is
    being removed): the request is idempotent, and the second goes over a new connection. A
    timeout is not retried: the caller's time is spent already."""
    try:
        return await client.get(url)
    except httpx.TimeoutException:
        raise
    except httpx.TransportError:
        return await client.get(url)


async def fetch_health(
    client: httpx.AsyncClient, url: str, path: str = "/health"
) -> dict[str, Any]:
    """The upstream's health JSON, or an `unreachable` status naming the error."""
    try:
        response = await _get_once_more_on_a_dropped_connection(client, url.rstrip("/") + path)
    except httpx.HTTPError as error:
        return {"status": "unreachable", "url": url, "error": type(error).__name__}
    try:
        body = response.json()
    except ValueError:
        body = {}
    status = body.get("status") if isinstance(body, dict) else None
    return {
        "status": status or f"http {response.status_code}",
        "url": url,
        "code": response.status_code,
    }


async def fetch_all_health(
    urls: Mapping[str, str], timeout: float, paths: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Health of every named upstream, asked concurrently."""
    paths = paths or {}
    async with httpx.AsyncClient(timeout=timeout) as client:
        names = list(urls)
        answers = await asyncio.gather(
            *(fetch_health(client, urls[name], paths.get(name, "/health")) for name in names)
        )
    return dict(zip(names, answers, strict=True))

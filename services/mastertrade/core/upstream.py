"""Asking other MasterTrade services for their health over HTTP (gateway and monitoring UI)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx


async def fetch_health(
    client: httpx.AsyncClient, url: str, path: str = "/health"
) -> dict[str, Any]:
    """The upstream's health JSON, or an `unreachable` status naming the error."""
    try:
        response = await client.get(url.rstrip("/") + path)
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

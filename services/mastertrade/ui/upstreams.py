"""Reading the upstreams the dashboard shows: the API gateway and the data access API.

Every read answers a `Section`: the JSON, or a sentence saying which upstream failed and how
(not configured, down, too slow, an error status with its detail), which the page shows in
place of the data. Nothing here raises for an upstream's fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

GATEWAY = "api_gateway"
DATA_API = "data_access_api"
VARIABLES = {GATEWAY: "API_GATEWAY_URL", DATA_API: "DATA_ACCESS_API_URL"}
MAX_DETAIL_CHARS = 200


@dataclass(frozen=True)
class Section:
    """One read: its data when `ok`, else `error` (a sentence for a person)."""

    ok: bool
    data: Any = None
    error: str | None = None
    status: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "data": self.data, "error": self.error}


def detail_of(response: httpx.Response) -> str:
    """The `detail` of an error answer (FastAPI's and the gateway's shape), else its text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    text = detail if isinstance(detail, str) else (str(detail) if detail else response.text)
    return text.strip()[:MAX_DETAIL_CHARS] or response.reason_phrase


def section_of(upstream: str, response: httpx.Response) -> Section:
    """An answer as a Section: its JSON when it succeeded, else what went wrong."""
    if not response.is_success:
        error = f"{upstream} answered {response.status_code}: {detail_of(response)}"
        return Section(False, error=error, status=response.status_code)
    try:
        return Section(True, data=response.json(), status=response.status_code)
    except ValueError:
        return Section(False, error=f"{upstream} answered something that is not JSON")


class Upstreams:
    """The pooled client, the two base URLs (None when not configured) and the gateway key the
    dashboard reads with, if any."""

    def __init__(
        self, urls: Mapping[str, str], client: httpx.AsyncClient, gateway_key: str | None = None
    ) -> None:
        self.urls = {name: urls[name].rstrip("/") for name in VARIABLES if urls.get(name)}
        self.client = client
        self.gateway_key = gateway_key

    async def request(
        self,
        upstream: str,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Section:
        """`method path` on `upstream`, answered as a Section (JSON data or an error)."""
        base = self.urls.get(upstream)
        if base is None:
            return Section(False, error=f"{upstream} is not configured: set {VARIABLES[upstream]}")
        if upstream == GATEWAY and headers is None and self.gateway_key:
            headers = {"X-API-Key": self.gateway_key}  # a caller's own key is theirs to send
        try:
            response = await self.client.request(
                method, base + path, params=params, headers=headers
            )
        except httpx.TimeoutException:
            return Section(False, error=f"{upstream} did not answer in time")
        except httpx.ConnectError:
            return Section(False, error=f"{upstream} refused the connection or is down")
        except httpx.HTTPError as failure:
            return Section(False, error=f"{upstream} broke the exchange ({type(failure).__name__})")
        return section_of(upstream, response)

    async def get(
        self, upstream: str, path: str, params: Mapping[str, Any] | None = None
    ) -> Section:
        return await self.request(upstream, "GET", path, params)

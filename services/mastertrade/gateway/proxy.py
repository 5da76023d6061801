"""Forwarding `/api/<service>/<path>` to the service, with pooled connections.

The body is read up to GATEWAY_MAX_BODY_BYTES (413 beyond); hop-by-hop headers and the caller's
API key are not forwarded, except the `Authorization` of an admin route (already checked for the
admin scope), which the service checks again with its own admin token; X-Request-ID and
X-Forwarded-For are. The answer is streamed back as it comes. A service that is not configured
is a 503, one that refuses connections or breaks the exchange a 502, one too slow a 504; each
answer names the service and says what happened.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import anyio
import httpx
from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from mastertrade.core.requestid import current_request_id
from mastertrade.gateway.access import is_admin_path

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "host", "content-length", "authorization",
    "x-api-key", "x-request-id",
})  # fmt: skip
# to an admin route the caller's bearer token goes on: the service checks its own admin token
ADMIN_HOP_BY_HOP = HOP_BY_HOP - {"authorization"}
ANSWER_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "transfer-encoding", "upgrade", "content-length", "x-request-id",
})  # fmt: skip


class BodyTooLargeError(Exception):
    """The request body is larger than the gateway forwards."""


def problem(status: int, detail: str, retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or BodyTooLargeError as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


def forwarded_headers(request: Request, keep_authorization: bool = False) -> list[tuple[str, str]]:
    dropped = ADMIN_HOP_BY_HOP if keep_authorization else HOP_BY_HOP
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in dropped]
    client = request.client.host if request.client else "unknown"
    prior = request.headers.get("x-forwarded-for")
    headers.append(("x-forwarded-for", f"{prior}, {client}" if prior else client))
    request_id = current_request_id.get()
    if request_id is not None:
        headers.append(("x-request-id", request_id))
    return headers


def answer_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {k: v for k, v in headers if k.lower() not in ANSWER_HOP_BY_HOP}


async def forward(
    client: httpx.AsyncClient, service: str, base_url: str, request: Request, body: bytes
) -> Response:
    """Send the request on to `base_url` and stream the answer back, or a 502/503/504."""
    path = request.path_params.get("path", "")
    query = request.url.query
    outgoing = client.build_request(
        request.method,
        f"{base_url}/{path}" + (f"?{query}" if query else ""),
        headers=forwarded_headers(request, keep_authorization=is_admin_path(path)),
        content=body,
    )
    try:
        upstream = await client.send(outgoing, stream=True)
    except httpx.PoolTimeout:
        return problem(503, f"{service}: every connection to it is busy; retry later", 1)
    except httpx.TimeoutException:
        return problem(504, f"{service} did not answer in time")
    except httpx.ConnectError:
        return problem(502, f"{service} refused the connection or is down", 5)
    except httpx.HTTPError as error:
        return problem(502, f"{service} broke the exchange ({type(error).__name__})")
    return StreamingResponse(
        relay(upstream),
        status_code=upstream.status_code,
        headers=answer_headers(upstream.headers.multi_items()),
        background=BackgroundTask(upstream.aclose),
    )


async def relay(upstream: httpx.Response) -> AsyncIterator[bytes]:
    """The upstream's body as it comes; its connection goes back to the pool even when the
    caller goes away mid-answer (the task is cancelled: the close is shielded from that)."""
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    finally:
        with anyio.CancelScope(shield=True):
            await upstream.aclose()

"""Forwarding `/api/<service>/<path>` to the service, with pooled connections.

The body is read up to GATEWAY_MAX_BODY_BYTES (413 beyond); hop-by-hop headers and the caller's
API key are not forwarded, except the `Authorization` of an admin route (already checked for the
admin scope), which the service checks again with its own admin token; X-Request-ID and
X-Forwarded-For are. An answer of known length up to `BUFFER_LIMIT` is relayed in one piece (no
streaming machinery for the common small JSON answer); a longer or open-ended one is streamed as
it comes. Bytes go through untouched (no decompression) and no cookie is kept between callers.
At most GATEWAY_MAX_CONNECTIONS requests are in flight to the upstreams: one that cannot get a
connection within DEPENDENCY_TIMEOUT is a 503, a service that refuses connections or breaks the
exchange a 502, one too slow a 504; each answer names the service and says what happened.

The client is aiohttp rather than httpx: on the proxy path httpx with httpcore and anyio cost
about four times the CPU per request (and, without sniffio installed, retried a failing import
several times per request), which was most of the latency the gateway added.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import anyio
from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from mastertrade.core.requestid import current_request_id
from mastertrade.gateway.access import is_admin_path

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "host", "content-length", "authorization",
    "x-api-key", "x-request-id", "x-forwarded-for",  # the last two are set anew below
})  # fmt: skip
# to an admin route the caller's bearer token goes on: the service checks its own admin token
ADMIN_HOP_BY_HOP = HOP_BY_HOP - {"authorization"}
# answers keep their content-length when relayed in one piece (HEAD answers need it too)
ANSWER_HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"x-request-id",
})  # fmt: skip
STREAMED_HOP_BY_HOP = ANSWER_HOP_BY_HOP | {b"content-length"}
BUFFER_LIMIT = 1024 * 1024
# aiohttp adds these unless told not to; the caller's own are forwarded as they came
NOT_ADDED = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


class BodyTooLargeError(Exception):
    """The request body is larger than the gateway forwards."""


def problem(status: int, detail: str, retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or BodyTooLargeError as soon as it passes `limit` bytes."""
    headers = request.headers
    declared = headers.get("content-length")
    if declared is None and "transfer-encoding" not in headers:
        return b""  # HTTP/1.1: a request with neither header has no body
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
    # and what the caller's Connection header names is the caller's hop's alone (RFC 9110 7.6.1)
    named = {
        name.strip().lower()
        for line in request.headers.getlist("connection")
        for name in line.split(",")
    }
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in dropped | named]
    client = request.client.host if request.client else "unknown"
    prior = ", ".join(request.headers.getlist("x-forwarded-for"))
    headers.append(("x-forwarded-for", f"{prior}, {client}" if prior else client))
    request_id = current_request_id.get()
    if request_id is not None:
        headers.append(("x-request-id", request_id))
    return headers


def answer_headers(
    raw: tuple[tuple[bytes, bytes], ...], dropped: frozenset[bytes]
) -> list[tuple[bytes, bytes]]:
    """The upstream's headers as it sent them (repeated ones too), hop-by-hop ones dropped."""
    return [(key.lower(), value) for key, value in raw if key.lower() not in dropped]


@dataclass
class Upstreams:
    """The pooled connections to every upstream, and the cap on requests in flight."""

    session: aiohttp.ClientSession
    slots: asyncio.Semaphore
    pool_wait: float

    @classmethod
    def open(cls, max_connections: int, connect_timeout: float, read_timeout: float) -> Upstreams:
        connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0,
                                         keepalive_timeout=30)  # fmt: skip
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=connect_timeout, sock_read=read_timeout
            ),
            auto_decompress=False,
            skip_auto_headers=NOT_ADDED,
            cookie_jar=aiohttp.DummyCookieJar(),  # a proxy never carries one caller's cookies
        )
        return cls(session, asyncio.Semaphore(max_connections), connect_timeout)

    async def close(self) -> None:
        await self.session.close()


class Slot:
    """One request's place among those in flight; given back once, whichever path ends it."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self.slots = slots
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.slots.release()


async def forward(
    upstreams: Upstreams, service: str, base_url: str, request: Request, body: bytes
) -> Response:
    """Send the request on to `base_url` and relay the answer, or a 502/503/504."""
    if upstreams.slots.locked():
        try:
            await asyncio.wait_for(upstreams.slots.acquire(), upstreams.pool_wait)
        except TimeoutError:
            return problem(503, f"{service}: every connection to it is busy; retry later", 1)
    else:  # a free slot is taken at once: no task and timer of wait_for's on the common path
        await upstreams.slots.acquire()
    slot = Slot(upstreams.slots)
    try:
        return await _exchange(upstreams.session, slot, service, base_url, (request, body))
    except BaseException:
        slot.release()
        raise


async def _exchange(
    session: aiohttp.ClientSession, slot: Slot, service: str, base_url: str,
    incoming: tuple[Request, bytes],
) -> Response:  # fmt: skip
    """The exchange itself; the slot is given back when the answer is done with."""
    request, body = incoming
    path = request.path_params.get("path", "")
    # the raw query string, as Starlette's request.url would give it without building the URL
    query = request.scope["query_string"].decode()
    url = f"{base_url}/{path}" + (f"?{query}" if query else "")
    try:
        upstream = await session.request(
            request.method, url, data=body or None,
            headers=forwarded_headers(request, keep_authorization=is_admin_path(path)),
            allow_redirects=False,
        )  # fmt: skip
        length = upstream.content_length
        if length is not None and length <= BUFFER_LIMIT:
            content = await upstream.read()
            upstream.release()
            slot.release()
            answer = Response(content=content, status_code=upstream.status)
            answer.raw_headers = answer_headers(upstream.raw_headers, ANSWER_HOP_BY_HOP)
            return answer
    except aiohttp.ClientConnectorError:
        slot.release()
        return problem(502, f"{service} refused the connection or is down", 5)
    except TimeoutError:
        slot.release()
        return problem(504, f"{service} did not answer in time")
    except aiohttp.ClientError as error:
        slot.release()
        return problem(502, f"{service} broke the exchange ({type(error).__name__})")
    answer = StreamingResponse(
        relay(upstream, slot), status_code=upstream.status,
        background=BackgroundTask(_done, upstream, slot),
    )  # fmt: skip
    answer.raw_headers = answer_headers(upstream.raw_headers, STREAMED_HOP_BY_HOP)
    return answer


async def relay(upstream: aiohttp.ClientResponse, slot: Slot) -> AsyncIterator[bytes]:
    """The upstream's body as it comes; its connection goes back to the pool even when the
    caller goes away mid-answer (the task is cancelled: the release is shielded from that)."""
    try:
        async for chunk in upstream.content.iter_any():
            yield chunk
    finally:
        with anyio.CancelScope(shield=True):
            await _done(upstream, slot)


async def _done(upstream: aiohttp.ClientResponse, slot: Slot) -> None:
    """Give a streamed answer's connection back to the pool and its slot back, once."""
    upstream.release()
    slot.release()

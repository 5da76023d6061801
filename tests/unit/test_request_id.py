"""X-Request-ID: kept when the caller's is sane, made otherwise, echoed, and on every log line
written while the request is answered."""

from __future__ import annotations

import logging

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mastertrade.core.logs import JsonFormatter
from mastertrade.core.requestid import RequestIdFilter, RequestIdMiddleware, accept_or_create


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.addFilter(RequestIdFilter())
        self.setFormatter(JsonFormatter("test_service"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_the_request_id_reaches_the_answer_and_the_logs() -> None:
    logger = logging.getLogger("mastertrade.test_request_id")
    handler = Collect()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    async def endpoint(request: Request) -> PlainTextResponse:
        logger.info("answering %s", request.url.path)
        return PlainTextResponse("ok")

    app = RequestIdMiddleware(Starlette(routes=[Route("/x", endpoint)]))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            given = await client.get("/x", headers={"X-Request-ID": "abc-123"})
            made = await client.get("/x")
            hostile = await client.get("/x", headers={"X-Request-ID": "a b<script>" + "x" * 300})
    finally:
        logger.removeHandler(handler)
    assert given.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 32
    assert hostile.headers["x-request-id"] != "a b"
    assert len(hostile.headers["x-request-id"]) == 32
    assert '"request_id": "abc-123"' in handler.lines[0]
    assert f'"request_id": "{made.headers["x-request-id"]}"' in handler.lines[1]
    logger.info("outside any request")
    assert accept_or_create("ok.id:1") == "ok.id:1"

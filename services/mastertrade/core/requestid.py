"""Request ids: every HTTP request carries one X-Request-ID, into the logs and the answer.

`RequestIdMiddleware` takes the caller's X-Request-ID when it is a sane token (the gateway sets
one and forwards it to the upstream, so one id follows a request through every service), or
makes a new one; it stores it in a context variable for the duration of the request and puts it
on the response. `RequestIdFilter` copies it onto every log record as `request_id`.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-request-id"
# Ids are copied into logs and upstream requests: a bounded, header-safe alphabet only
VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def accept_or_create(given: str | None) -> str:
    """The caller's id when it is valid, else a fresh random one."""
    if given is not None and VALID_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def _header(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            return str(value.decode("latin-1"))
    return None


class RequestIdMiddleware:
    """Sets `current_request_id` for each HTTP request and echoes it as X-Request-ID."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accept_or_create(_header(scope))
        token = current_request_id.set(request_id)
        encoded = request_id.encode("latin-1")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k != b"x-request-id"]
                message["headers"] = [*headers, (b"x-request-id", encoded)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to records logged while a request is being answered."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = current_request_id.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True

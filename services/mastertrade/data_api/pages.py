"""Answering a read: parameters checked, then a cached or fresh JSON page, or a CSV stream.

Every problem with a parameter is a 422 naming the parameter and saying what to do; a page is
`{"data": [...], "count": n, "next_cursor": "..." | null}` with rows in keyset order; a CSV
export streams every row of the selection from the cursor (or the start) on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from mastertrade.core.errors import invalid_parameter
from mastertrade.core.runtime import Runtime
from mastertrade.data_api.cache import PageCache
from mastertrade.data_api.cursor import CursorError, decode_cursor, encode_cursor, query_digest
from mastertrade.data_api.export import (
    RETRY_AFTER_SECONDS,
    CsvExport,
    Exports,
    ExportsBusyError,
)
from mastertrade.data_api.queries import Order, Selection, build_query, key_of, row_to_json
from mastertrade.data_api.resources import Resource

MAX_LIMIT = 10_000
PAGE_PARAMETERS = frozenset({"limit", "cursor", "start", "end", "order", "format"})


class ExportResponse(StreamingResponse):
    """A CSV export's answer, which gives the export's connection back however it ended (see
    `CsvExport`)."""

    def __init__(self, export: CsvExport, filename: str) -> None:
        disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
        super().__init__(export, media_type="text/csv", headers=disposition)
        self.export = export

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.export.release()


@dataclass(frozen=True)
class PageParams:
    """The paging parameters every resource takes."""

    limit: int
    cursor: str | None
    start: datetime | None
    end: datetime | None
    order: Order
    format: Literal["json", "csv"]


EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)


def _aware(name: str, value: datetime | None) -> datetime | None:
    """A time with its zone, between 1970 and 2200 (a year-9999 time with an offset does not
    even exist in UTC, where the database compares it)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise invalid_parameter(
            "query", name, "add a time zone to the time, e.g. 2025-01-01T00:00:00Z"
        )
    if not EARLIEST <= value < LATEST:
        raise invalid_parameter("query", name, "give a time from 1970-01-01 to 2199-12-31 UTC")
    return value


async def page_params(
    *,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="rows per page")] = 1000,
    cursor: Annotated[
        str | None, Query(max_length=512, description="next_cursor of the previous page")
    ] = None,
    start: Annotated[datetime | None, Query(description="first time included (ISO 8601)")] = None,
    end: Annotated[datetime | None, Query(description="first time excluded (ISO 8601)")] = None,
    order: Annotated[Order, Query(description="asc: oldest first; desc: newest first")] = "asc",
    format: Annotated[
        Literal["json", "csv"], Query(description="json pages, or every row streamed as CSV")
    ] = "json",
) -> PageParams:
    """Paging parameters, checked together."""
    start, end = _aware("start", start), _aware("end", end)
    if start is not None and end is not None and start >= end:
        raise invalid_parameter("query", "end", f"end ({end}) must be after start ({start})")
    return PageParams(limit, cursor, start, end, order, format)


PageDep = Annotated[PageParams, Depends(page_params)]


def _check_known(request: Request, resource: Resource, path_params: set[str]) -> None:
    known = PAGE_PARAMETERS | (set(resource.filters) - path_params)
    for name in request.query_params:
        if name not in known:
            shown = name if len(name) <= 40 else f"{name[:40]}..."
            raise invalid_parameter(
                "query", shown, f"unknown parameter; this endpoint takes {', '.join(sorted(known))}"
            )


async def serve(
    request: Request,
    runtime: Runtime,
    cache: PageCache,
    resource: Resource,
    *,
    filters: dict[str, Any],
    page: PageParams,
    path_params: frozenset[str] = frozenset(),
) -> Response:
    """The page (or CSV export) of `resource` that the request asks for."""
    _check_known(request, resource, set(path_params))
    chosen = {name: value for name, value in filters.items() if value is not None}
    selection = Selection(chosen, page.start, page.end, page.order)
    digest = query_digest(resource, selection.identity())
    if page.cursor is not None:
        try:
            after = decode_cursor(resource, digest, page.cursor)
        except CursorError as error:
            raise invalid_parameter("query", "cursor", str(error)) from None
        selection = Selection(chosen, page.start, page.end, page.order, after)
    if page.format == "csv":
        sql, args = build_query(resource, selection, None)
        exports: Exports = request.app.state.exports
        try:
            stream = await exports.open(runtime.pool, resource, sql, args)
        except ExportsBusyError as busy:
            retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
            raise HTTPException(503, str(busy), headers=retry) from None
        return ExportResponse(stream, f"{resource.name}.csv")
    return await _json_page(runtime, cache, resource, selection, (digest, page))


async def _json_page(
    runtime: Runtime,
    cache: PageCache,
    resource: Resource,
    selection: Selection,
    request: tuple[str, PageParams],
) -> Response:
    digest, page = request
    key = cache.key(resource.name, digest, page.cursor, page.limit)
    cached = await cache.get(key)
    if cached is not None:
        return Response(cached, media_type="application/json", headers={"X-Cache": "hit"})
    sql, args = build_query(resource, selection, page.limit + 1)
    # a connection waited for only so long: every one held by exports or slow pages is a 503
    # with Retry-After (core/app.py), not a request hanging until its client gives up
    async with runtime.pool.acquire(timeout=runtime.settings.dependency_timeout) as connection:
        rows = await connection.fetch(sql, *args)
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    next_cursor = encode_cursor(resource, digest, key_of(resource, rows[-1])) if more else None
    body = json.dumps(
        {
            "data": [row_to_json(resource, row) for row in rows],
            "count": len(rows),
            "next_cursor": next_cursor,
        },
        separators=(",", ":"),
    ).encode()
    await cache.put(key, body)
    return Response(body, media_type="application/json", headers={"X-Cache": "miss"})

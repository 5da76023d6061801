"""CSV export streamed from a server-side cursor: rows are read in batches while they are sent,
never all held in memory, whatever the size of the range."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from mastertrade.data_api.queries import row_to_csv
from mastertrade.data_api.resources import Resource

BATCH_ROWS = 2000


async def stream_csv(
    pool: asyncpg.Pool, resource: Resource, sql: str, args: list[Any]
) -> AsyncIterator[bytes]:
    """The header, then the rows of `sql` in chunks of BATCH_ROWS rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([column.name for column in resource.columns])
    async with pool.acquire() as connection, connection.transaction(readonly=True):
        rows = 0
        async for row in connection.cursor(sql, *args, prefetch=BATCH_ROWS):
            writer.writerow(row_to_csv(resource, row))
            rows += 1
            if rows % BATCH_ROWS == 0:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()

"""CSV export streamed from a server-side cursor: rows are read in batches while they are sent,
never all held in memory, whatever the size of the range.

The connection is taken and the first batch read before the answer starts (`open_csv`), so a
query the database refuses, or a database that is away, gets its error answer (422, 503) rather
than a 200 cut short; what fails later, mid-stream, can only end the answer early.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
from asyncpg.cursor import Cursor
from asyncpg.pool import PoolConnectionProxy
from asyncpg.transaction import Transaction

from mastertrade.data_api.queries import row_to_csv
from mastertrade.data_api.resources import Resource

BATCH_ROWS = 2000


async def open_csv(
    pool: asyncpg.Pool, resource: Resource, sql: str, args: list[Any]
) -> AsyncIterator[bytes]:
    """The CSV of `sql`'s rows: the header, then chunks of BATCH_ROWS rows, its first batch
    read already (errors raise here, before anything is sent)."""
    connection = await pool.acquire()
    transaction = connection.transaction(readonly=True)
    try:
        await transaction.start()
        cursor = await connection.cursor(sql, *args)
        first = await cursor.fetch(BATCH_ROWS)
    except BaseException:
        await _close(pool, connection, transaction)
        raise
    return _chunks(resource, first, (pool, connection, transaction, cursor))


async def _chunks(
    resource: Resource,
    batch: Sequence[asyncpg.Record],
    held: tuple[asyncpg.Pool, PoolConnectionProxy, Transaction, Cursor],
) -> AsyncIterator[bytes]:
    pool, connection, transaction, cursor = held
    try:
        yield _csv([[column.name for column in resource.columns]])
        while batch:
            yield _csv([row_to_csv(resource, row) for row in batch])
            batch = await cursor.fetch(BATCH_ROWS) if len(batch) == BATCH_ROWS else []
    finally:
        await _close(pool, connection, transaction)


def _csv(rows: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


async def _close(pool: asyncpg.Pool, connection: PoolConnectionProxy, transaction: Any) -> None:
    """End the read-only transaction (nothing to keep) and give the connection back."""
    try:
        if not connection.is_closed():
            await transaction.rollback()
    finally:
        await pool.release(connection)

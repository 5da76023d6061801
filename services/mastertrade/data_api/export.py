"""CSV export streamed from a server-side cursor: rows are read in batches while they are sent,
never all held in memory, whatever the size of the range.

The connection is taken and the first batch read before the answer starts (`Exports.open`), so
a query the database refuses, or a database that is away, gets its error answer (422, 503)
rather than a 200 cut short; what fails later, mid-stream, can only end the answer early.

An export holds one of the pod's database connections, and a read-only snapshot, for as long as
its client takes to read it. So at most DATA_API_MAX_EXPORTS stream at once (another is answered
503 with Retry-After, and the JSON pages keep the rest of the pool), and none for longer than
DATA_API_EXPORT_SECONDS: then its connection is given back even while the client has stopped
reading, and the answer ends incomplete (never a well-formed CSV missing its last rows).
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.cursor import Cursor
from asyncpg.pool import PoolConnectionProxy
from asyncpg.transaction import Transaction

from mastertrade.data_api.queries import row_to_csv
from mastertrade.data_api.resources import Resource

BATCH_ROWS = 2000
RETRY_AFTER_SECONDS = 30
logger = logging.getLogger("mastertrade.data_api.export")


@dataclass(frozen=True)
class ExportLimits:
    most: int
    """Exports streaming at once in this process."""
    seconds: float
    """The longest one export may hold its connection."""
    wait: float = 5.0
    """The longest an export waits for a database connection (then 503)."""


class ExportsBusyError(Exception):
    """Every export place is taken: the caller should retry later."""


class ExportCutOffError(Exception):
    """An export streamed longer than its limit; its answer ends incomplete."""


class Exports:
    """The CSV exports streaming in this process, within their limits."""

    def __init__(self, limits: ExportLimits) -> None:
        self.limits = limits
        self.running = 0

    async def open(
        self, pool: asyncpg.Pool, resource: Resource, sql: str, args: list[Any]
    ) -> CsvExport:
        """The CSV of `sql`'s rows: the header, then chunks of BATCH_ROWS rows, its first batch
        read already (errors raise here, before anything is sent); ExportsBusyError when
        `limits.most` exports stream already."""
        if self.running >= self.limits.most:
            raise ExportsBusyError(
                f"{self.running} CSV exports are streaming, the most at once "
                "(DATA_API_MAX_EXPORTS): retry later, or page through the JSON"
            )
        self.running += 1
        try:
            connection = await pool.acquire(timeout=self.limits.wait)
        except BaseException:
            self.running -= 1
            raise
        held = _Held(pool, connection, connection.transaction(readonly=True), self._ended)
        await held.start(sql, args)  # on failure it gives the connection and the place back
        held.cut_off_after(self.limits.seconds)
        return CsvExport(resource, held)

    def _ended(self) -> None:
        self.running -= 1


class CsvExport:
    """One export's CSV, iterated once. Its connection is given back when the iteration ends,
    and by `release`, which the answer calls however it ended: a client that left before the
    answer began never starts the iteration, whose own cleanup then never runs."""

    def __init__(self, resource: Resource, held: _Held) -> None:
        self._held = held
        self._chunks = _chunks(resource, held)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks

    async def release(self) -> None:
        await self._held.release()


class _Held:
    """One export's connection, transaction and cursor, given back exactly once: when the
    stream ends, or when its time is up, whichever comes first."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        connection: PoolConnectionProxy,
        transaction: Transaction,
        on_end: Callable[[], None],
    ) -> None:
        self.pool, self.connection, self.transaction = pool, connection, transaction
        self.cursor: Cursor | None = None
        self.first: Sequence[asyncpg.Record] = []
        self.cut_off = False
        self._on_end = on_end
        self._released = False
        self._started = False
        self._lock = asyncio.Lock()  # a fetch and the release never overlap
        self._timer: asyncio.TimerHandle | None = None
        self._cutting: asyncio.Task[None] | None = None

    async def start(self, sql: str, args: list[Any]) -> None:
        """Open the cursor and read the first batch; released again when that fails."""
        try:
            await self.transaction.start()
            self._started = True
            self.cursor = await self.connection.cursor(sql, *args)
            self.first = await self.cursor.fetch(BATCH_ROWS)
        except BaseException:
            await self.release()
            raise

    def cut_off_after(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(seconds, self._time_up, seconds)

    def _time_up(self, seconds: float) -> None:
        self.cut_off = True
        logger.warning(
            "a CSV export streamed for %g s (DATA_API_EXPORT_SECONDS): its connection is "
            "given back and its answer ends incomplete", seconds,
        )  # fmt: skip
        self._cutting = asyncio.get_running_loop().create_task(self.release())

    async def fetch(self) -> Sequence[asyncpg.Record]:
        async with self._lock:
            if self.cut_off or self.cursor is None:
                raise ExportCutOffError("the export streamed longer than DATA_API_EXPORT_SECONDS")
            return await self.cursor.fetch(BATCH_ROWS)

    async def release(self) -> None:
        """End the read-only transaction (nothing to keep) and give the connection back."""
        if self._timer is not None:
            self._timer.cancel()
        async with self._lock:
            if self._released:
                return
            self._released = True
            try:
                if self._started and not self.connection.is_closed():
                    await self.transaction.rollback()  # (a failed start has nothing to end)
            finally:
                try:
                    await self.pool.release(self.connection)
                finally:
                    self._on_end()


async def _chunks(resource: Resource, held: _Held) -> AsyncIterator[bytes]:
    batch = held.first
    try:
        yield _csv([[column.name for column in resource.columns]])
        while batch:
            yield _csv([row_to_csv(resource, row) for row in batch])
            batch = await held.fetch() if len(batch) == BATCH_ROWS else []
    finally:
        await held.release()


def _csv(rows: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()

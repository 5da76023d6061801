"""What PostgreSQL answers while it restarts or fails over is waited out, never taken for the
work's fault (which would dead-letter the message being handled: a lost order or signal).

A statement cancelled by an operator (57014) is run on the real server; "the database system
is starting up" (57P03), which a reconnect gets during a restart, comes from a local server that
answers a connection's start-up the way PostgreSQL does then.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from mastertrade.core.retry import retry_transient

pytestmark = pytest.mark.infra

SSL_REQUEST = 80877103


def error_response(code: str, message: str) -> bytes:
    fields = b"".join(
        kind + text.encode() + b"\0"
        for kind, text in ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", code), (b"M", message))
    )
    body = fields + b"\0"
    return b"E" + struct.pack("!i", len(body) + 4) + body


async def answer_starting_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Refuse SSL, read the start-up message, answer 57P03 and hang up, as PostgreSQL does
    before its recovery finished."""
    length, code = struct.unpack("!ii", await reader.readexactly(8))
    if code == SSL_REQUEST:
        writer.write(b"N")
        length, _ = struct.unpack("!ii", await reader.readexactly(8))
    await reader.readexactly(length - 8)
    writer.write(error_response("57P03", "the database system is starting up"))
    await writer.drain()
    writer.close()


@asynccontextmanager
async def starting_up_server() -> AsyncIterator[str]:
    server = await asyncio.start_server(answer_starting_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"


async def test_a_server_starting_up_is_waited_for(database_url: str) -> None:
    attempts: list[str] = []
    async with starting_up_server() as starting:

        async def connect() -> int:
            url = starting if not attempts else database_url
            attempts.append(url)
            connection = await asyncpg.connect(url)
            try:
                return int(await connection.fetchval("SELECT 1"))
            finally:
                await connection.close()

        assert await retry_transient(connect, "connecting") == 1
    assert attempts == [starting, database_url]


async def test_a_statement_an_operator_cancelled_is_run_again(database_url: str) -> None:
    worker = await asyncpg.connect(database_url)
    operator = await asyncpg.connect(database_url)
    runs = 0

    async def work() -> str:
        nonlocal runs
        runs += 1
        seconds = 30 if runs == 1 else 0
        return str(await worker.fetchval("SELECT pg_sleep($1)::text || 'done'", seconds))

    try:
        task = asyncio.create_task(retry_transient(work, "sleeping"))
        while not await operator.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'PgSleep'",
            worker.get_server_pid(),
        ):
            await asyncio.sleep(0.02)
        assert await operator.fetchval("SELECT pg_cancel_backend($1)", worker.get_server_pid())
        assert await asyncio.wait_for(task, 10) == "done"
    finally:
        await operator.close()
        await worker.close()
    assert runs == 2

"""What PostgreSQL answers while it restarts or fails over is waited out, never taken for the
work's fault (which would dead-letter the message being handled: a lost order or signal); what
says the work itself is wrong is not retried.

The answers a reconnect gets during a restart ("starting up", "shutting down", "too many
clients"), with its disk or memory full, or with a password rotated before the Secret, come
from a local server that answers a connection's start-up the way PostgreSQL does then; a
statement over its statement_timeout runs on the real server.
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


@asynccontextmanager
async def refusing_server(code: str, message: str) -> AsyncIterator[str]:
    """A server that refuses SSL, reads a connection's start-up message, answers the error and
    hangs up, as PostgreSQL does while it cannot take connections."""

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        length, request = struct.unpack("!ii", await reader.readexactly(8))
        if request == SSL_REQUEST:
            writer.write(b"N")
            length, _ = struct.unpack("!ii", await reader.readexactly(8))
        await reader.readexactly(length - 8)
        writer.write(error_response(code, message))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("57P03", "the database system is starting up"),
        ("57P03", "the database system is shutting down"),
        ("57P01", "terminating connection due to administrator command"),
        ("53300", "sorry, too many clients already"),
        ("53100", "could not extend file: No space left on device"),
        ("53200", "out of memory"),
        ("28P01", 'password authentication failed for user "mastertrade"'),  # rotated
    ],
)
async def test_a_server_that_cannot_take_connections_yet_is_waited_for(
    database_url: str, code: str, message: str
) -> None:
    attempts: list[str] = []
    async with refusing_server(code, message) as starting:

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


async def test_a_statement_over_its_timeout_is_not_run_again(database_url: str) -> None:
    """57014 is also what statement_timeout raises: retried, such a statement would hold its
    message for ever."""
    runs = 0

    async def work() -> None:
        nonlocal runs
        runs += 1
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute("SET statement_timeout = 50")
            await connection.execute("SELECT pg_sleep(5)")
        finally:
            await connection.close()

    with pytest.raises(asyncpg.exceptions.QueryCanceledError):
        await asyncio.wait_for(retry_transient(work, "sleeping"), 10)
    assert runs == 1

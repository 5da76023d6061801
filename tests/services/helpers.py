"""Helpers of the services tests: running an app in-process, waiting for an answer or a
condition, one SQL statement on a test database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aio_pika
import asyncpg
import httpx
from fastapi import FastAPI

from mastertrade.core.bus import declare_topology
from mastertrade_model.topology import DEAD_LETTER_QUEUE, EXCHANGES, QUEUES


@asynccontextmanager
async def own_connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own to the database at `url`, closed on the way out."""
    connection = await asyncpg.connect(url)
    try:
        yield connection
    finally:
        await connection.close()


async def execute_sql(url: str, sql: str, *args: object) -> str:
    """Run one statement on the database at `url` on a connection of its own; its status."""
    async with own_connection(url) as connection:
        return await connection.execute(sql, *args)


async def value_of(url: str, query: str, *args: object) -> object:
    """The first value of `query`'s first row (None without a row), on a connection of its own."""
    async with own_connection(url) as connection:
        return await connection.fetchval(query, *args)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan entered, and a client talking to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


async def wait_for_status(
    client: httpx.AsyncClient, path: str, status: int, timeout: float = 15.0
) -> httpx.Response:
    """Poll `path` until it answers `status`; fail with the last answer after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        response = await client.get(path)
        if response.status_code == status or asyncio.get_running_loop().time() > deadline:
            assert response.status_code == status, response.text
            return response
        await asyncio.sleep(0.2)


async def dead_letters(url: str) -> int:
    """Messages in the dead letters (the topology declared, as the services declare it)."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await declare_topology(channel, EXCHANGES, QUEUES)
        queue = await channel.declare_queue(DEAD_LETTER_QUEUE, passive=True)
        return int(queue.declaration_result.message_count or 0)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    """Wait until `check` comes true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)

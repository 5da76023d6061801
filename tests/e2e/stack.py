"""The trading loop as real processes, for the end-to-end tier.

Each test gets a migrated database and a RabbitMQ vhost of its own; the services run as
`mastertrade serve` processes started, health-checked and stopped by `mastertrade up`'s own
functions (`mastertrade.local_stack`). `strategy_signal` publishes a signal on the broker exactly
as a strategy does, for the tests that need signals of a chosen size at a chosen moment;
test_strategies_trade.py runs the real strategy service instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg
import redis.asyncio as aioredis
from aio_pika.abc import AbstractChannel

from mastertrade.catalog import find_service
from mastertrade.core.bus import publish_json
from mastertrade.core.messages import Signal
from mastertrade.core.prices import TopOfBook, fetch_book, write_book
from mastertrade.local_stack import Child, start_child, stop_children, wait_healthy
from mastertrade_model.topology import SIGNALS
from tests.infra import free_port

HOST = "127.0.0.1"
ADMIN_TOKEN = "e2e-admin-token"
HEALTHY_TIMEOUT = 90.0  # several processes start at once on a small, shared machine
T = TypeVar("T")


def stack_env(database: str, vhost: str, redis: str) -> dict[str, str]:
    """What every service of the stack gets: the test's infrastructure and quick loops."""
    return {
        "DATABASE_URL": database,
        "RABBITMQ_URL": vhost,
        "REDIS_URL": redis,
        "LOG_FORMAT": "console",
        "LOG_LEVEL": "WARNING",
        "DEPENDENCY_TIMEOUT": "5",
        "RECONNECT_MAX_BACKOFF": "0.5",
        "ORDER_POLL_SECONDS": "0.2",
        "RISK_ADMIN_API_KEY_SHA256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest(),
        "STRATEGY_ADMIN_API_KEY_SHA256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest(),
    }


@dataclass
class Stack:
    """The processes a test started; `stop` ends every one still running."""

    env: dict[str, str]
    children: list[Child] = field(default_factory=list)

    async def start(self, service: str, **extra: str) -> Child:
        spec = find_service(service)
        environ = {**os.environ, **self.env, **extra}
        child = await start_child(spec, free_port(), HOST, environ)
        self.children.append(child)
        assert await wait_healthy(child, HOST, HEALTHY_TIMEOUT), f"{service} is not healthy"
        return child

    async def kill(self, child: Child) -> None:
        """SIGKILL: no shutdown code runs, whatever the process was doing."""
        child.process.kill()
        await child.process.wait()
        await child.pump
        self.children.remove(child)

    async def stop(self) -> None:
        await stop_children([c for c in self.children if c.process.returncode is None])
        self.children.clear()

    @staticmethod
    def url(child: Child) -> str:
        return f"http://{HOST}:{child.port}"


async def strategy_signal(
    channel: AbstractChannel,
    symbol: str,
    side: str,
    quantity: Decimal,
    price: Decimal,
    *,
    order_type: str = "market",
) -> str:
    """Publish a signal as a strategy does (a market order, or a limit order at `price`);
    returns its signal id."""
    signal = Signal(signal_id=f"e2e-{uuid.uuid4().hex[:20]}", strategy_id="e2e-stand-in",
                    symbol=symbol, side=side, quantity=quantity, price=price,
                    order_type=order_type)  # fmt: skip
    await publish_json(channel, SIGNALS.name, f"signal.{symbol}", signal.to_json())
    return signal.signal_id


async def wait_until(
    probe: Callable[[], Awaitable[T | None]],
    what: str,
    timeout: float = 120.0,
    explain: Callable[[], Awaitable[str]] | None = None,
) -> T:
    """Poll `probe` until it returns something other than None (or False); on a timeout the
    failure carries what `explain` reports of the state the test was waiting on."""
    deadline = time.monotonic() + timeout
    while True:
        found = await probe()
        if found is not None and found is not False:
            return found
        if time.monotonic() >= deadline:
            state = f"\n{await explain()}" if explain is not None else ""
            raise AssertionError(f"timed out waiting for {what}{state}")
        await asyncio.sleep(0.2)


async def set_quote(redis_url: str, symbol: str, bid: str, ask: str) -> None:
    """The top of book of a symbol the test moves itself (the market data service never
    writes it)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        await write_book(client, TopOfBook(symbol, Decimal(bid), Decimal(ask),
                                           int(time.time() * 1000)))  # fmt: skip
    finally:
        await client.aclose()


async def read_quote(redis_url: str, symbol: str) -> TopOfBook:
    client = aioredis.Redis.from_url(redis_url)
    try:
        return await fetch_book(client, symbol)
    finally:
        await client.aclose()


async def query(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()

"""Retrying work through a database, broker or Redis outage instead of dead-lettering the message.

A message handler that fails because PostgreSQL or RabbitMQ is briefly away must not have its
message dead-lettered (the order would be lost): `retry_transient` keeps the message in hand
(unacknowledged) and retries with capped exponential backoff; errors of the message itself
(validation) propagate at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import redis.exceptions
from aio_pika.exceptions import AMQPError

from mastertrade.core.connections import POSTGRES_AWAY, DependencyUnavailableError

logger = logging.getLogger("mastertrade.retry")
T = TypeVar("T")

TRANSIENT: tuple[type[Exception], ...] = (
    DependencyUnavailableError,
    OSError,
    TimeoutError,
    *POSTGRES_AWAY,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    AMQPError,
    # Redis slow or away (paper fills read their quotes there): wait, never dead-letter an order
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


async def retry_transient(
    work: Callable[[], Awaitable[T]], what: str, max_backoff: float = 5.0
) -> T:
    """`await work()` until it does not fail with a transient error."""
    delay = 0.1
    while True:
        try:
            return await work()
        except TRANSIENT as error:
            logger.warning("%s failed (%s); retrying in %.1fs", what, error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff)

"""Fixtures of the services tests: real PostgreSQL, RabbitMQ and Redis, never mocks.

The machine's shared instances (PostgreSQL 5432, RabbitMQ 5672, Redis 6379) are used through a
database and a RabbitMQ vhost created for this test session and removed after it. Tests that
stop a dependency start private instances on other ports (see `infra.py`) and never touch the
shared ones.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator

import aio_pika
import asyncpg
import pytest

from mastertrade.core.bus import declare_topology
from mastertrade.migrations.runner import migrate_database
from mastertrade_model.topology import EXCHANGES, QUEUES
from tests.infra import create_database, create_vhost, delete_vhost, drop_database

REDIS_TEST_URL = os.environ.get("MASTERTRADE_TEST_REDIS", "redis://127.0.0.1:6379/9")


def migrated_database(prefix: str) -> Iterator[str]:
    """A new database named from `prefix`, migrated; dropped when the test is done with it."""
    url = create_database(prefix)
    asyncio.run(migrate_database(url, 10.0, lambda line: None))
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A migrated database of its own for the whole session."""
    yield from migrated_database("mastertrade_test")


@pytest.fixture
def market_db() -> Iterator[str]:
    """A freshly migrated database for one market data test."""
    yield from migrated_database("mastertrade_md")


@pytest.fixture
async def pool(market_db: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on `market_db` (tests with a database of another kind define their own)."""
    async with asyncpg.create_pool(market_db, min_size=1, max_size=4) as created:
        yield created


@pytest.fixture
def empty_database_url() -> Iterator[str]:
    """A new empty database for one test."""
    url = create_database("mastertrade_empty")
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """A vhost of its own on the shared broker for the whole session."""
    url = create_vhost("mastertrade_test")
    yield url
    delete_vhost(url)


@pytest.fixture
def service_env(database_url: str, rabbitmq_url: str) -> dict[str, str]:
    """The settings every service needs, pointing at the session's infrastructure, its queues
    emptied: what an earlier test left in them (a simulated market's tickers and candles, with
    no consumer then) is never handled as this test's."""
    asyncio.run(_purge_service_queues(rabbitmq_url))
    return {
        "DATABASE_URL": database_url,
        "RABBITMQ_URL": rabbitmq_url,
        "REDIS_URL": REDIS_TEST_URL,
        "LOG_FORMAT": "console",
        "RECONNECT_MAX_BACKOFF": "0.5",
        "DEPENDENCY_TIMEOUT": "1",
        # market_data_service backfills this much history into an empty database (90 days by
        # default, which would keep two shared cores busy behind every test that starts it)
        "MARKET_DATA_BACKFILL_DAYS": "1",
    }


async def _purge_service_queues(url: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await declare_topology(channel, EXCHANGES, QUEUES)
        for queue in QUEUES:
            await (await channel.declare_queue(queue.name, passive=True)).purge()


@pytest.fixture
def trading_env(service_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """Settings for the trading loop: a migrated database of this test alone (risk state, the
    equity peak and the breaker, is per database) and the session's vhost, its queues purged
    (`service_env`)."""
    database = create_database("mastertrade_trading")
    asyncio.run(migrate_database(database, 10.0, lambda line: None))
    yield {**service_env, "DATABASE_URL": database, "ORDER_POLL_SECONDS": "0.2"}
    drop_database(database)

"""Fixtures of the services tests: real PostgreSQL, RabbitMQ and Redis, never mocks.

The machine's shared instances (PostgreSQL 5432, RabbitMQ 5672, Redis 6379) are used through a
database and a RabbitMQ vhost created for this test session and removed after it. Tests that
stop a dependency start private instances on other ports (see `infra.py`) and never touch the
shared ones.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from mastertrade.migrations.runner import migrate_database
from tests.infra import create_database, create_vhost, delete_vhost, drop_database

REDIS_TEST_URL = os.environ.get("MASTERTRADE_TEST_REDIS", "redis://127.0.0.1:6379/9")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A migrated database of its own for the whole session."""
    url = create_database("mastertrade_test")
    asyncio.run(migrate_database(url, 10.0, lambda line: None))
    yield url
    drop_database(url)


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


@pytest.fixture(scope="session")
def service_env(database_url: str, rabbitmq_url: str) -> dict[str, str]:
    """The settings every service needs, pointing at the session's infrastructure."""
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

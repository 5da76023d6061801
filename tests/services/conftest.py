"""Fixtures of the services tests: real PostgreSQL, RabbitMQ and Redis, never mocks.

The machine's shared instances (PostgreSQL 5432, RabbitMQ 5672, Redis 6379) are used through a
database and a RabbitMQ vhost created for this test session and removed after it. Tests that
stop a dependency start private instances on other ports (see `infra.py`) and never touch the
shared ones.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from mastertrade.migrations.runner import migrate_database

PG_ADMIN_URL = os.environ.get("MASTERTRADE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
RABBIT_BASE = os.environ.get("MASTERTRADE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
REDIS_TEST_URL = os.environ.get("MASTERTRADE_TEST_REDIS", "redis://127.0.0.1:6379/9")


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(f"{PG_ADMIN_URL}/postgres", timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def create_database(prefix: str) -> str:
    """A new, empty database; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    return f"{PG_ADMIN_URL}/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


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
    vhost = f"mastertrade_test_{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield f"{RABBIT_BASE}/{vhost}"
    _rabbitmqctl("delete_vhost", vhost)


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
    }

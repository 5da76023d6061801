"""Connectors to PostgreSQL, RabbitMQ and Redis: open, ping and close, nothing else.

Each connector owns one long-lived client that survives its server going away: an asyncpg pool
(broken connections are replaced on the next acquire), an aio-pika robust connection with a
publisher-confirm channel (it reconnects and re-declares its topology by itself), and a redis
client (its pool reconnects on the next command). Opening may fail while a server is not up
yet; `DependencySupervisor` retries it with backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

import aio_pika
import asyncpg
import redis.asyncio as aioredis
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection

from mastertrade_model.values import Dependency

POSTGRES_AWAY: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # what a server restarting or failing over answers: 57P01 shutting down, 57P02 crashed,
    # 57P03 starting up (a reconnect's answer meanwhile), 57P05 idle too long; 53300 full for
    # now, 53100 its disk full, 53200 out of memory; 28000/28P01 a new connection refused (a
    # password rotated before the Secret, a pg_hba.conf or role changed): the server or its
    # set-up is wrong for now, not the message (the statements are small and bounded), so
    # dead-lettering every message meanwhile would lose the orders; the work waits, and the
    # logs and /health say why. Not a cancel (57014: statement_timeout would retry it for
    # ever) nor a read-only server (a deployment pointed at a standby must fail, not wait).
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.IdleSessionTimeoutError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.DiskFullError,
    asyncpg.exceptions.OutOfMemoryError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
)
"""PostgreSQL errors that say the server is away for now, not that the work is wrong: work
retried (`retry.TRANSIENT`), a request answered 503."""


POOL_SIZE = 10
"""Database connections a service's pool opens at most."""


class DependencyUnavailableError(Exception):
    """A dependency a request needs is not reachable right now (answered as 503)."""

    def __init__(self, dependency: Dependency) -> None:
        super().__init__(f"{dependency} is not available")
        self.dependency = dependency


class Connector(Protocol):
    """What a supervisor needs from a connection to one dependency."""

    dependency: Dependency

    async def open(self) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class SchemaNotMigratedError(Exception):
    """The database answers but lacks the schema this code needs (`mastertrade migrate`)."""


# The version of the newest migration applied, or NULL when no migration ever ran
SCHEMA_VERSION_QUERY = """
SELECT CASE WHEN to_regclass('schema_migrations') IS NULL THEN NULL
            ELSE (SELECT max(version) FROM schema_migrations) END
"""


async def keep_session(connection: asyncpg.Connection) -> None:
    """A pooled connection's release undoes nothing beyond the open transaction (which asyncpg
    rolls back before this is called): the default reset (advisory unlock, CLOSE ALL, UNLISTEN,
    RESET ALL) costs a round trip and four statements on every release, and no service leaves
    such session state on a pooled connection (cursors live in transactions, advisory locks are
    transaction-scoped, nothing LISTENs, and the only settings are the pool's own, made when each
    connection opens). Code that starts to must use its own connection.
    """


class PostgresConnector:
    """An asyncpg pool on DATABASE_URL; it is up when the schema is at `schema_version`."""

    dependency = Dependency.DATABASE

    def __init__(
        self,
        url: str,
        timeout: float,
        max_size: int = POOL_SIZE,
        schema_version: int = 0,
        session_settings: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.max_size = max_size
        self.schema_version = schema_version
        self.session_settings = dict(session_settings or {})
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise DependencyUnavailableError(self.dependency)
        return self._pool

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.url, min_size=1, max_size=self.max_size, timeout=self.timeout,
            reset=keep_session, init=self._set_session,
        )  # fmt: skip

    async def _set_session(self, connection: asyncpg.Connection) -> None:
        """Each new connection's session settings, for its whole life: set by a statement, not
        sent as startup parameters, which a connection pooler in front of PostgreSQL may refuse."""
        for name, value in self.session_settings.items():
            await connection.execute("SELECT set_config($1, $2, false)", name, value)

    async def ping(self) -> None:
        async with self.pool.acquire(timeout=self.timeout) as connection:
            applied = await connection.fetchval(SCHEMA_VERSION_QUERY, timeout=self.timeout)
        if self.schema_version and (applied is None or applied < self.schema_version):
            raise SchemaNotMigratedError(
                f"the schema is at version {applied or 0}, this code needs "
                f"{self.schema_version}: run `mastertrade migrate`"
            )

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=self.timeout)
        except TimeoutError:
            pool.terminate()


TopologyDeclarer = Callable[[AbstractRobustChannel], Awaitable[None]]


async def _declare_nothing(channel: AbstractRobustChannel) -> None:
    del channel


class RabbitConnector:
    """An aio-pika robust connection and one channel with publisher confirms."""

    dependency = Dependency.RABBITMQ

    def __init__(
        self,
        url: str,
        timeout: float,
        reconnect_interval: float,
        declare: TopologyDeclarer = _declare_nothing,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.reconnect_interval = reconnect_interval
        self.declare = declare
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None

    @property
    def channel(self) -> AbstractRobustChannel:
        if self._channel is None or self._channel.is_closed:
            raise DependencyUnavailableError(self.dependency)
        return self._channel

    async def open(self) -> None:
        connection = await aio_pika.connect_robust(
            self.url, timeout=self.timeout, reconnect_interval=self.reconnect_interval
        )
        try:
            channel = await connection.channel(publisher_confirms=True)
            await self.declare(channel)
        except BaseException:
            await connection.close()
            raise
        self._connection, self._channel = connection, channel

    async def ping(self) -> None:
        connection = self._connection
        if connection is None or not connection.connected.is_set():
            raise DependencyUnavailableError(self.dependency)
        if self.channel.is_closed:
            raise DependencyUnavailableError(self.dependency)

    async def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            await asyncio.wait_for(connection.close(), timeout=self.timeout)


class RedisConnector:
    """A redis.asyncio client on REDIS_URL."""

    dependency = Dependency.REDIS

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._client: aioredis.Redis | None = None

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            raise DependencyUnavailableError(self.dependency)
        return self._client

    async def open(self) -> None:
        client = aioredis.Redis.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            health_check_interval=30,
        )
        try:
            await client.ping()
        except BaseException:
            await client.aclose()
            raise
        self._client = client

    async def ping(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

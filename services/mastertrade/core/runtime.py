"""The live connections of one running service, built from its spec and settings.

`Runtime` creates one connector and supervisor per dependency the service needs, starts them
in the app's lifespan (without waiting for servers that are not up), answers health checks and
closes everything on shutdown. Routes reach the clients through `mastertrade.core.deps`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cache
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from aio_pika.abc import AbstractRobustChannel

from mastertrade import __version__
from mastertrade.core.bus import declare_topology
from mastertrade.core.connections import (
    Connector,
    PostgresConnector,
    RabbitConnector,
    RedisConnector,
)
from mastertrade.core.consumer import Consumer, Handler
from mastertrade.core.health import derive_health
from mastertrade.core.metrics import ServiceMetrics
from mastertrade.core.service import ServiceSpec
from mastertrade.core.settings import ServiceSettings
from mastertrade.core.supervisor import DependencySupervisor
from mastertrade.migrations.runner import load_migrations
from mastertrade_model.values import Dependency

logger = logging.getLogger("mastertrade.runtime")


def _url(settings: ServiceSettings, dependency: Dependency) -> str:
    url = settings.url_for(dependency)
    if url is None:
        raise ValueError(f"{dependency} is required but its URL is not set")
    return url


@cache
def required_schema_version() -> int:
    """The newest migration this code ships: /health is not ready below it."""
    return max((migration.version for migration in load_migrations()), default=0)


DRAIN_SECONDS = 15.0
FINISH_SECONDS = 5.0
"""The most each `on_drained` step may take at shutdown, after the consumers' drain."""
DEFAULT_PREFETCH = 10
# How long one round of dependency checks answers /health: a probe or a load balancer polling
# /health then costs the databases one check a second, however often it asks
HEALTH_CHECK_MAX_AGE = 1.0


def build_consumers(spec: ServiceSpec, handlers: Mapping[str, Handler]) -> list[Consumer]:
    """A consumer per handled queue; only queues the spec says the service consumes. A handler
    with a `prefetch` attribute (one that batches, say) takes that many messages at a time."""
    queues = {queue.name: queue for queue in spec.consumed_queues()}
    unknown = sorted(set(handlers) - set(spec.consumes))
    if unknown:
        raise ValueError(f"{spec.name} does not consume {', '.join(unknown)}")
    return [
        Consumer(queues[name], handler, getattr(handler, "prefetch", DEFAULT_PREFETCH))
        for name, handler in handlers.items()
    ]


def build_connector(
    spec: ServiceSpec,
    settings: ServiceSettings,
    dependency: Dependency,
    consumers: Sequence[Consumer] = (),
    database_settings: Mapping[str, str] | None = None,
) -> Connector:
    """The connector of one dependency, configured from the settings (`database_settings`: the
    session settings of every database connection)."""
    url = _url(settings, dependency)
    timeout = settings.dependency_timeout
    if dependency is Dependency.DATABASE:
        return PostgresConnector(
            url, timeout, schema_version=required_schema_version(),
            session_settings=database_settings,
        )  # fmt: skip
    if dependency is Dependency.REDIS:
        return RedisConnector(url, timeout)

    async def declare(channel: AbstractRobustChannel) -> None:
        await declare_topology(channel, spec.declared_exchanges(), spec.declared_queues())
        for consumer in consumers:
            await consumer.start(channel)

    interval = min(settings.reconnect_max_backoff, 5.0)
    return RabbitConnector(url, timeout, reconnect_interval=interval, declare=declare)


class Runtime:
    """Connections, metrics and uptime of a service instance."""

    def __init__(
        self,
        spec: ServiceSpec,
        settings: ServiceSettings,
        handlers: Mapping[str, Handler] | None = None,
        version: str = __version__,
        database_settings: Mapping[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.version = version
        self.metrics = ServiceMetrics(spec.name, version)
        self.started = time.monotonic()
        self.consumers = build_consumers(spec, handlers or {})
        self.supervisors: dict[Dependency, DependencySupervisor] = {
            dependency: DependencySupervisor(
                build_connector(spec, settings, dependency, self.consumers, database_settings),
                self.metrics,
                timeout=settings.dependency_timeout,
                max_backoff=settings.reconnect_max_backoff,
            )
            for dependency in spec.dependencies
        }
        # Extra sections of the health JSON (name -> what to show), e.g. market_data's sources
        self.health_details: dict[str, Callable[[], Any]] = {}
        # Run at shutdown once the consumers drained, while the connections are still open: the
        # trading services send and mark what their last batches committed
        self.on_drained: list[Callable[[], Awaitable[None]]] = []
        self._checks: Mapping[str, bool] | None = None
        self._checked_at = 0.0
        self._pending_checks: asyncio.Future[Mapping[str, bool]] | None = None

    def consumer(self, queue: str) -> Consumer:
        """The consumer of `queue` (one this service handles)."""
        found = [consumer for consumer in self.consumers if consumer.queue.name == queue]
        if not found:
            raise KeyError(f"{self.spec.name} handles no queue {queue}")
        return found[0]

    async def start(self) -> None:
        """Start supervising; wait at most one timeout for the first connection attempts."""
        self.started = time.monotonic()
        for supervisor in self.supervisors.values():
            supervisor.start()
        waits = [
            asyncio.create_task(supervisor.first_attempt.wait())
            for supervisor in self.supervisors.values()
        ]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=self.settings.dependency_timeout * 2)
            for task in pending:
                task.cancel()

    async def stop(self) -> None:
        """Drain the consumers (messages in flight finish), run `on_drained`, then close every
        connection."""
        await asyncio.gather(*(consumer.stop(DRAIN_SECONDS) for consumer in self.consumers))
        for finish in self.on_drained:
            try:
                await asyncio.wait_for(finish(), FINISH_SECONDS)
            except Exception as error:  # a dependency is gone: what is left is the loops' to do
                logger.warning("finishing before shutdown failed: %s", error)
        await asyncio.gather(*(supervisor.stop() for supervisor in self.supervisors.values()))

    async def health(self) -> tuple[int, dict[str, Any]]:
        """The seed's health answer, from checks at most HEALTH_CHECK_MAX_AGE old."""
        checks = self._checks
        if checks is None or time.monotonic() - self._checked_at >= HEALTH_CHECK_MAX_AGE:
            if self._pending_checks is None:  # concurrent requests share one round of checks
                self._pending_checks = asyncio.ensure_future(self._run_checks())
            checks = await asyncio.shield(self._pending_checks)
        uptime = time.monotonic() - self.started
        status, body = derive_health(self.spec.name, self.version, uptime, checks)
        for name, detail in self.health_details.items():
            body[name] = detail()
        return status, body

    async def _run_checks(self) -> Mapping[str, bool]:
        try:
            names = [str(dependency) for dependency in self.supervisors]
            results = await asyncio.gather(*(s.check() for s in self.supervisors.values()))
            self._checks = dict(zip(names, results, strict=True))
            self._checked_at = time.monotonic()
            return self._checks
        finally:
            self._pending_checks = None

    def _connector(self, dependency: Dependency) -> Connector:
        supervisor = self.supervisors.get(dependency)
        if supervisor is None:
            raise LookupError(f"{self.spec.name} does not use {dependency}")
        return supervisor.connector

    @property
    def pool(self) -> asyncpg.Pool:
        connector = self._connector(Dependency.DATABASE)
        assert isinstance(connector, PostgresConnector)
        return connector.pool

    @property
    def redis(self) -> aioredis.Redis:
        connector = self._connector(Dependency.REDIS)
        assert isinstance(connector, RedisConnector)
        return connector.client

    @property
    def channel(self) -> AbstractRobustChannel:
        connector = self._connector(Dependency.RABBITMQ)
        assert isinstance(connector, RabbitConnector)
        return connector.channel

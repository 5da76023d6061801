"""A dependency that is late or goes away: the service keeps running, says so, and recovers.

Private PostgreSQL and Redis servers (tests/services/infra.py) are stopped and started under a
running service; /health must turn 503 naming the dependency, requests needing it 503 (never
500; a page, which only caches in Redis, is served from PostgreSQL), and both must recover
without restarting the service.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from mastertrade.catalog import find_service, load_service_module, load_service_settings
from mastertrade.core.bus import publish_json
from mastertrade.migrations.runner import migrate_database
from mastertrade_model.topology import ORDERS
from tests.infra import PrivatePostgres, PrivateRabbit, PrivateRedis
from tests.services.helpers import running, wait_for_status

pytestmark = pytest.mark.infra


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    yield server
    server.stop()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    yield server
    server.remove()


def data_api_app(env: dict[str, str]) -> FastAPI:
    spec = find_service("data-access-api")
    module = load_service_module(spec)
    return module.create_app(load_service_settings(spec, env))


def gauge(metrics: str, dependency: str) -> str:
    prefix = f'mastertrade_dependency_up{{dependency="{dependency}",service="data_access_api"}} '
    return next(line for line in metrics.splitlines() if line.startswith(prefix)).split()[-1]


async def test_redis_going_away_and_coming_back(
    service_env: dict[str, str], private_redis: PrivateRedis
) -> None:
    private_redis.start()
    async with running(data_api_app({**service_env, "REDIS_URL": private_redis.url})) as client:
        await wait_for_status(client, "/health", 200)

        private_redis.stop()
        down = await wait_for_status(client, "/health", 503)
        assert down.json()["status"] == "unhealthy"
        assert down.json()["checks"] == {"database": "ok", "redis": "error"}
        assert gauge((await client.get("/metrics")).text, "redis") == "0.0"
        # the page cache only saves work: pages come from PostgreSQL meanwhile
        served = await client.get("/api/v1/candles/BTCUSDT")
        assert (served.status_code, served.headers["X-Cache"]) == (200, "miss")
        assert (await client.get("/livez")).status_code == 200

        private_redis.start()
        up = await wait_for_status(client, "/health", 200)
        assert up.json()["checks"] == {"database": "ok", "redis": "ok"}
        assert gauge((await client.get("/metrics")).text, "redis") == "1.0"
        assert (await client.get("/api/v1/candles/BTCUSDT")).status_code == 200


async def test_postgres_late_then_gone_then_back(
    service_env: dict[str, str], private_postgres: PrivatePostgres
) -> None:
    env = {**service_env, "DATABASE_URL": private_postgres.url}
    async with running(data_api_app(env)) as client:
        late = await client.get("/health")
        assert late.status_code == 503
        assert late.json()["checks"] == {"database": "error", "redis": "ok"}

        private_postgres.start()
        unmigrated = await wait_for_status(client, "/health", 503)
        assert unmigrated.json()["checks"] == {"database": "error", "redis": "ok"}
        await migrate_database(private_postgres.url, 10, lambda line: None)
        await wait_for_status(client, "/health", 200)

        private_postgres.stop()
        gone = await wait_for_status(client, "/health", 503)
        assert gone.json()["checks"]["database"] == "error"
        assert gauge((await client.get("/metrics")).text, "database") == "0.0"

        private_postgres.start()
        back = await wait_for_status(client, "/health", 200)
        assert back.json()["checks"] == {"database": "ok", "redis": "ok"}


@pytest.fixture
def private_rabbit() -> Iterator[PrivateRabbit]:
    server = PrivateRabbit()
    yield server
    server.remove()


async def test_rabbitmq_late_then_gone_then_back(
    service_env: dict[str, str], private_rabbit: PrivateRabbit
) -> None:
    spec = find_service("order-executor")
    module = load_service_module(spec)
    env = {**service_env, "RABBITMQ_URL": private_rabbit.url}
    app = module.create_app(load_service_settings(spec, env))
    async with running(app) as client:
        late = await client.get("/health")
        assert late.status_code == 503
        assert late.json()["checks"] == {"database": "ok", "rabbitmq": "error", "redis": "ok"}

        private_rabbit.start()
        await wait_for_status(client, "/health", 200, timeout=30)
        await publish_json(app.state.runtime.channel, ORDERS.name, "order.filled", {"n": 1})

        private_rabbit.stop()
        gone = await wait_for_status(client, "/health", 503)
        assert gone.json()["checks"]["rabbitmq"] == "error"

        private_rabbit.start()
        await wait_for_status(client, "/health", 200, timeout=30)
        # The robust channel came back with the topology: a confirmed publish works again.
        await publish_json(app.state.runtime.channel, ORDERS.name, "order.filled", {"n": 2})

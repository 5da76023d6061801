"""Every service starts on the real infrastructure and answers health, liveness and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from mastertrade.catalog import SERVICES, find_service, load_service_module, load_service_settings
from mastertrade.core.service import ServiceSpec
from mastertrade.migrations.runner import migrate_database
from tests.infra import create_database, create_vhost, delete_vhost, drop_database
from tests.services.helpers import running, wait_for_status

pytestmark = pytest.mark.infra

METRIC_NAMES = (
    "mastertrade_http_requests_total",
    "mastertrade_http_request_duration_seconds",
    "mastertrade_dependency_up",
    "mastertrade_service_info",
)

# One real endpoint of each service, beside the platform's.
ENDPOINTS = {
    "market_data_service": "/api/v1/candles/BTCUSDT?interval=1h&limit=5",
    "strategy_service": "/api/v1/strategies",
    "order_executor": "/api/v1/orders",
    "risk_manager": "/api/v1/limits",
    "alert_system": "/api/v1/alerts",
    "api_gateway": "/api/v1/services",
    "data_access_api": "/api/v1/candles/ethusdt",
    "arbitrage_service": "/api/v1/opportunities",
    "monitoring_ui": "/",
}


EXTRA_SECTIONS = {"market_data_service": ["market_data"], "strategy_service": ["live"]}


@pytest.fixture
def own_env(service_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A migrated database and a vhost of this test's own: a service starting here must not
    meet the messages and orders other tests of the session left behind."""
    database, vhost = create_database("mastertrade_up"), create_vhost("mastertrade_up")
    try:
        asyncio.run(migrate_database(database, 30.0, lambda line: None))
        yield {**service_env, "DATABASE_URL": database, "RABBITMQ_URL": vhost}
    finally:
        drop_database(database)
        delete_vhost(vhost)


@pytest.mark.parametrize("spec", SERVICES, ids=lambda spec: spec.name)
async def test_service_starts_and_answers(spec: ServiceSpec, own_env: dict[str, str]) -> None:
    module = load_service_module(spec)
    settings = load_service_settings(spec, own_env)
    async with running(module.create_app(settings)) as client:
        health = await client.get(spec.health_path)
        assert health.status_code == 200, health.text
        body = health.json()
        # the seed's keys, in the seed's order; market data adds which sources are on, the
        # strategy service whether this pod decides the live candles
        extra = EXTRA_SECTIONS.get(spec.name, [])
        assert list(body) == ["status", "service", "version", "uptime", "checks", *extra]
        assert body["status"] == "healthy"
        assert body["service"] == spec.name
        assert isinstance(body["uptime"], int)
        assert body["checks"] == {str(dependency): "ok" for dependency in spec.dependencies}

        assert (await client.get("/livez")).status_code == 200
        endpoint = await client.get(ENDPOINTS[spec.name])
        assert endpoint.status_code == 200, endpoint.text

        metrics = (await client.get("/metrics")).text
        for name in METRIC_NAMES:
            assert name in metrics
        route = spec.health_path
        assert (
            f'mastertrade_http_request_duration_seconds_count{{method="GET",route="{route}",'
            f'service="{spec.name}"}} 1.0'
        ) in metrics
        assert (
            f'mastertrade_http_requests_total{{method="GET",route="{route}",'
            f'service="{spec.name}",status="200"}} 1.0'
        ) in metrics
        assert f'mastertrade_service_info{{service="{spec.name}",version="0.1.0"}} 1.0' in metrics
        for dependency in spec.dependencies:
            assert (
                f'mastertrade_dependency_up{{dependency="{dependency}",service="{spec.name}"}} 1.0'
            ) in metrics


async def test_unknown_routes_are_counted_under_one_label(service_env: dict[str, str]) -> None:
    spec = SERVICES[0]
    module = load_service_module(spec)
    settings = load_service_settings(spec, service_env)
    async with running(module.create_app(settings)) as client:
        for path in ("/nope/1", "/nope/2"):
            assert (await client.get(path)).status_code == 404
        metrics = (await client.get("/metrics")).text
    assert 'route="unmatched",service="market_data_service",status="404"} 2.0' in metrics


async def test_data_api_reads_candles_through_the_cache(
    service_env: dict[str, str], database_url: str
) -> None:
    spec = find_service("data_access_api")
    module = load_service_module(spec)
    settings = load_service_settings(spec, service_env)
    app = module.create_app(settings)
    async with running(app) as client:
        # ADAUSDT: a symbol the simulated market (run by other tests here) never writes
        await app.state.runtime.pool.execute(
            "INSERT INTO candles VALUES ('ADAUSDT', '1m', '2025-01-01T00:00:00Z', "
            "1, 2, 0.5, 1.5, 10) ON CONFLICT DO NOTHING"
        )
        first = await client.get("/api/v1/candles/ada-usdt", params={"limit": 7})
        second = await client.get("/api/v1/candles/ada-usdt", params={"limit": 7})
        bad = await client.get("/api/v1/candles/not a symbol!")
    assert first.headers["X-Cache"] == "miss"
    assert second.headers["X-Cache"] == "hit"
    assert first.json() == second.json()
    assert first.json()["data"][0]["close"] == "1.5"
    assert bad.status_code == 422


async def test_risk_manager_checks_a_position(service_env: dict[str, str]) -> None:
    spec = find_service("risk-manager")
    module = load_service_module(spec)
    env = {**service_env, "MAX_POSITION_SIZE_PCT": "0.10"}
    settings = load_service_settings(spec, env)
    async with running(module.create_app(settings)) as client:
        answer = await client.post(
            "/api/v1/check",
            json={"position_value": 1500, "portfolio_value": 10000, "portfolio_peak": 10000},
        )
    assert answer.status_code == 200
    assert answer.json()["approved"] is False


async def test_before_migrations_endpoints_answer_503_and_say_why(
    service_env: dict[str, str], empty_database_url: str
) -> None:
    spec = find_service("order_executor")
    module = load_service_module(spec)
    env = {**service_env, "DATABASE_URL": empty_database_url}
    settings = load_service_settings(spec, env)
    async with running(module.create_app(settings)) as client:
        health = await client.get("/health")
        orders = await client.get("/api/v1/orders")
        assert health.status_code == 503, "not ready while the schema is missing"
        assert health.json()["checks"]["database"] == "error"
        await migrate_database(empty_database_url, 10, lambda line: None)
        await wait_for_status(client, "/health", 200)
    assert orders.status_code == 503
    assert "mastertrade migrate" in orders.json()["detail"]

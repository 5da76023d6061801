"""The service catalog against the seed (written from the seed on purpose) and the chart."""

from __future__ import annotations

import pytest

from mastertrade.catalog import SERVICES, UnknownServiceError, find_service, load_service_module
from mastertrade.core.service import ServiceSpec
from mastertrade.core.settings import SettingsError, load_settings
from mastertrade_model import load_default_values
from mastertrade_model.values import Dependency

DB, MQ, CACHE = Dependency.DATABASE, Dependency.RABBITMQ, Dependency.REDIS

# From the seed's Compose file: name -> (port, what its environment connects to). The monitoring
# UI reads no infrastructure URL; api_gateway and data_access_api are not in the seed's specs
# and follow the chart's catalog.
SEED = {
    "market_data_service": (8000, {DB, MQ, CACHE}),
    "strategy_service": (8006, {DB, MQ, CACHE}),
    # The seed gives it DB and MQ; paper orders fill at the top of book the market data
    # service keeps in Redis, so the catalog adds it (charts/mastertrade/values.yaml says why)
    "order_executor": (8081, {DB, MQ, CACHE}),
    "risk_manager": (8080, {DB, MQ}),
    "alert_system": (8007, {DB, MQ}),
    "api_gateway": (8080, {DB, MQ, CACHE}),
    "data_access_api": (8005, {DB, CACHE}),
    "arbitrage_service": (8002, {DB, MQ, CACHE}),
    "monitoring_ui": (3000, set()),
}


def test_catalog_matches_the_seed() -> None:
    found = {spec.name: (spec.port, set(spec.dependencies)) for spec in SERVICES}
    assert found == SEED


def test_monitoring_ui_health_is_at_api_health_as_in_the_seed() -> None:
    assert find_service("monitoring_ui").health_path == "/api/health"
    others = {spec.health_path for spec in SERVICES if spec.name != "monitoring_ui"}
    assert others == {"/health"}


def test_every_workload_running_mastertrades_image_is_a_service() -> None:
    catalog = load_default_values().workloads.values()
    own_image = {workload.name for workload in catalog if workload.image is None}
    assert own_image == {spec.kube_name for spec in SERVICES}


@pytest.mark.parametrize(
    "name", ["market-data-service", "market_data_service", " Market-Data-Service"]
)
def test_find_service_accepts_dashes_and_underscores(name: str) -> None:
    assert find_service(name).name == "market_data_service"


def test_unknown_service_names_the_known_ones() -> None:
    with pytest.raises(UnknownServiceError, match="risk-manager"):
        find_service("trading-bot")


@pytest.mark.parametrize("spec", SERVICES, ids=lambda spec: spec.name)
def test_every_service_module_has_settings_and_create_app(spec: ServiceSpec) -> None:
    module = load_service_module(spec)
    assert callable(module.create_app)
    assert "database_url" in module.Settings.model_fields


def test_consumed_queues_and_exchanges_come_from_the_topology() -> None:
    strategy = find_service("strategy_service")
    assert {q.name for q in strategy.consumed_queues()} == {
        "strategy_service.candles",
        "mastertrade.dead_letters",
    }
    # and the queues its signals and alerts are routed to, with what those bind to
    assert {q.name for q in strategy.declared_queues()} == {
        "strategy_service.candles",
        "risk_manager.order_requests",
        "alert_system.events",
        "mastertrade.dead_letters",
    }
    assert {e.name for e in strategy.declared_exchanges()} == {
        "mastertrade.signals",
        "mastertrade.alerts",  # its strategy_change alerts
        "mastertrade.market_data",
        "mastertrade.orders",  # alert_system.events binds its fills
        "mastertrade.dlx",
    }
    assert find_service("data_access_api").declared_exchanges() == ()


def test_every_url_the_chart_passes_reaches_the_services_upstreams() -> None:
    """Each variable of a workload's `serviceUrls` is read at start into `upstreams`, under the
    name of the service it points at; a wrong URL is refused naming the variable."""
    catalog = load_default_values()
    by_name = {w.name: w for w in catalog.workloads.values()}
    checked = 0
    for spec in SERVICES:
        urls = by_name[spec.kube_name].serviceUrls
        environ = {variable: f"http://{variable.lower()}:1" for variable in urls}
        settings = load_settings(
            load_service_module(spec).Settings,
            spec.name,
            environ=environ,
            upstreams=spec.upstream_variables,
        )
        expected = {
            catalog.workloads[key].name.replace("-", "_"): f"http://{variable.lower()}:1"
            for variable, key in urls.items()
        }
        assert settings.upstreams == expected, spec.name
        checked += len(urls)
        for variable in urls:
            with pytest.raises(SettingsError, match=variable):
                load_settings(
                    load_service_module(spec).Settings,
                    spec.name,
                    environ={variable: "ftp://nowhere"},
                    upstreams=spec.upstream_variables,
                )
    assert checked >= 8


def test_every_setting_and_api_key_the_chart_passes_is_read_by_the_service() -> None:
    values = load_default_values()
    by_name = {w.name: w for w in values.workloads.values()}
    for spec in SERVICES:
        fields = load_service_module(spec).Settings.model_fields
        workload = by_name[spec.kube_name]
        settings = values.settings.model_dump()
        passed = [key for group in workload.settings for key in settings[group]]
        passed += workload.apiKeys
        unread = [variable for variable in passed if variable.lower() not in fields]
        assert unread == [], f"{spec.name} ignores {unread}"

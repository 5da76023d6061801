"""The MasterTrade services in code: the package and message topology of each.

Ports, dependencies and health paths are the deployment's and come from the workload catalog
(charts/mastertrade/values.yaml, see `ServiceSpec`): which of DATABASE_URL, RABBITMQ_URL and
REDIS_URL a service reads is what it needs, what its /health checks and what makes it answer 503.
`mastertrade serve`, `mastertrade up` and the tests read this tuple.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Protocol, cast

from fastapi import FastAPI

from mastertrade.core.service import ServiceSpec
from mastertrade.core.settings import ServiceSettings, load_settings
from mastertrade_model import topology

SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        name="market_data_service",
        package="mastertrade.market_data",
        publishes=(topology.MARKET_DATA,),
        title="MasterTrade market data",
    ),
    ServiceSpec(
        name="strategy_service",
        package="mastertrade.strategy",
        publishes=(topology.SIGNALS, topology.ALERTS),
        consumes=("strategy_service.candles",),
        title="MasterTrade strategies",
    ),
    ServiceSpec(
        name="order_executor",
        package="mastertrade.execution",
        publishes=(topology.ORDERS,),
        consumes=("order_executor.approved_orders",),
        title="MasterTrade order execution",
    ),
    ServiceSpec(
        name="risk_manager",
        package="mastertrade.risk",
        publishes=(topology.ORDERS, topology.ALERTS),
        consumes=("risk_manager.order_requests",),
        title="MasterTrade risk management",
    ),
    ServiceSpec(
        name="alert_system",
        package="mastertrade.alerts",
        consumes=("alert_system.events",),
        title="MasterTrade alerts",
    ),
    ServiceSpec(
        name="api_gateway",
        package="mastertrade.gateway",
        publishes=(topology.SIGNALS,),
        title="MasterTrade API gateway",
    ),
    ServiceSpec(
        name="data_access_api",
        package="mastertrade.data_api",
        title="MasterTrade historical data API",
    ),
    ServiceSpec(
        name="arbitrage_service",
        package="mastertrade.arbitrage",
        publishes=(topology.SIGNALS,),
        consumes=("arbitrage_service.tickers",),
        title="MasterTrade arbitrage detection",
    ),
    ServiceSpec(
        name="monitoring_ui",
        package="mastertrade.ui",
        title="MasterTrade monitoring UI",
    ),
)


class UnknownServiceError(LookupError):
    """No service of that name in the catalog."""


def find_service(name: str) -> ServiceSpec:
    """The spec of a service named as in the seed or Kubernetes (dashes or underscores)."""
    wanted = name.strip().lower().replace("-", "_")
    for spec in SERVICES:
        if spec.name == wanted:
            return spec
    known = ", ".join(spec.kube_name for spec in SERVICES)
    raise UnknownServiceError(f"unknown service {name!r}; known services: {known}")


class ServiceModule(Protocol):
    """What every service package's `app` module provides."""

    Settings: type[ServiceSettings]

    def create_app(self, settings: ServiceSettings) -> FastAPI: ...


def load_service_settings(
    spec: ServiceSpec, environ: Mapping[str, str] | None = None
) -> ServiceSettings:
    """The service's settings from the environment (or `environ`), with the URLs of the services
    it calls (its catalog entry's `serviceUrls`); SettingsError says what is wrong."""
    module = load_service_module(spec)
    return load_settings(
        module.Settings, spec.name, spec.dependencies, environ, upstreams=spec.upstream_variables
    )


def load_service_module(spec: ServiceSpec) -> ServiceModule:
    """Import `<package>.app` of a service (nothing is imported before it is asked for)."""
    return cast(ServiceModule, importlib.import_module(f"{spec.package}.app"))

"""Each workload's rendered objects carry exactly the seed's figures.

The expected figures are written here from the seed document (000_d0c2acfd1e6ea32b.txt) on
purpose, not read from values.yaml: if the catalog drifts from the seed, these tests fail.
Workloads the seed gives no figure for (resources of the gateway, data API, arbitrage,
monitoring) are not asserted beyond what the seed says of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from tests.helm import Manifest, by_kind_and_name

RELEASE_PREFIX = "mastertrade-"


@dataclass(frozen=True)
class SeedCheck:
    """The seed's healthcheck: interval, timeout, retries (seconds)."""

    interval: int
    timeout: int
    retries: int
    http_path: str | None = None
    exec_contains: str | None = None


@dataclass(frozen=True)
class SeedWorkload:
    name: str
    kind: str
    image: str | None
    ports: dict[str, int]  # Service port -> container port
    check: SeedCheck
    limits: tuple[str, str] | None = None
    requests: tuple[str, str] | None = None
    volume: tuple[str, str] | None = None  # (mount path, size)
    env: dict[str, str] = field(default_factory=dict)
    secret_env: tuple[str, ...] = ()
    config_paths: tuple[str, ...] = ()
    args_contain: tuple[str, ...] = ()
    connections: tuple[str, ...] = ()


SERVICE_CHECK = 30, 10, 3

SEED: list[SeedWorkload] = [
    SeedWorkload(
        "postgres",
        "StatefulSet",
        "postgres:15-alpine",
        {"5432": 5432},
        SeedCheck(10, 5, 5, exec_contains="pg_isready"),
        limits=("2", "4Gi"),
        requests=("1", "2Gi"),
        volume=("/var/lib/postgresql/data", "50Gi"),
        env={
            "POSTGRES_DB": "mastertrade",
            "POSTGRES_USER": "mastertrade",
            "PGDATA": "/var/lib/postgresql/data/pgdata",
        },
        secret_env=("POSTGRES_PASSWORD",),
    ),
    SeedWorkload(
        "rabbitmq",
        "StatefulSet",
        "rabbitmq:3.12-management",
        {"5672": 5672, "15672": 15672},
        SeedCheck(30, 10, 5, exec_contains="rabbitmq-diagnostics"),
        limits=("1", "2Gi"),
        requests=("500m", "1Gi"),
        volume=("/var/lib/rabbitmq", "10Gi"),
        env={"RABBITMQ_DEFAULT_USER": "mastertrade", "RABBITMQ_DEFAULT_VHOST": "/"},
        secret_env=("RABBITMQ_DEFAULT_PASS",),
        config_paths=("/etc/rabbitmq/rabbitmq.config", "/etc/rabbitmq/definitions.json"),
    ),
    SeedWorkload(
        "redis",
        "StatefulSet",
        "redis:7-alpine",
        {"6379": 6379},
        SeedCheck(10, 3, 5, exec_contains="redis-cli"),
        limits=("1", "2Gi"),
        requests=("500m", "1Gi"),
        volume=("/data", "2Gi"),
        args_contain=(
            "--appendonly",
            "yes",
            "--maxmemory",
            "2gb",
            "--maxmemory-policy",
            "allkeys-lru",
        ),
    ),
    SeedWorkload(
        "market-data-service",
        "Deployment",
        None,
        {"8000": 8000},
        SeedCheck(*SERVICE_CHECK, http_path="/health"),
        limits=("2", "4Gi"),
        requests=("1", "2Gi"),
        connections=("DATABASE_URL", "RABBITMQ_URL", "REDIS_URL"),
    ),
    SeedWorkload(
        "strategy-service",
        "Deployment",
        None,
        {"8006": 8006},
        SeedCheck(*SERVICE_CHECK, http_path="/health"),
        limits=("4", "8Gi"),
        requests=("2", "4Gi"),
        env={
            "MAX_ACTIVE_STRATEGIES": "10",
            "DAILY_GENERATION_COUNT": "500",
            "GENERATION_TIME": "03:00",
        },
        connections=("DATABASE_URL", "RABBITMQ_URL", "REDIS_URL"),
    ),
    SeedWorkload(
        "order-executor",
        "Deployment",
        None,
        {"8081": 8081},
        SeedCheck(*SERVICE_CHECK, http_path="/health"),
        limits=("1", "2Gi"),
        requests=("500m", "1Gi"),
        env={"TRADING_ENVIRONMENT": "paper", "PAPER_TRADING_INITIAL_BALANCE": "10000"},
        connections=("DATABASE_URL", "RABBITMQ_URL"),
    ),
    SeedWorkload(
        "risk-manager",
        "Deployment",
        None,
        {"8080": 8080},
        SeedCheck(*SERVICE_CHECK, http_path="/health"),
        limits=("1", "2Gi"),
        requests=("500m", "1Gi"),
        env={
            "MAX_POSITION_SIZE_PCT": "0.2",
            "MAX_PORTFOLIO_DRAWDOWN_PCT": "0.15",
            "CIRCUIT_BREAKER_ENABLED": "true",
        },
        connections=("DATABASE_URL", "RABBITMQ_URL"),
    ),
    SeedWorkload(
        "alert-system",
        "Deployment",
        None,
        {"8007": 8007},
        SeedCheck(*SERVICE_CHECK, http_path="/health"),
        limits=("500m", "1Gi"),
        requests=("250m", "512Mi"),
        env={"EMAIL_HOST": "smtp.gmail.com", "EMAIL_PORT": "587"},
        connections=("DATABASE_URL", "RABBITMQ_URL"),
    ),
    SeedWorkload(
        "api-gateway",
        "Deployment",
        None,
        {"8080": 8080},
        SeedCheck(*SERVICE_CHECK, http_path="/health"),
    ),
    SeedWorkload(
        "data-access-api",
        "Deployment",
        None,
        {"8005": 8005},
        SeedCheck(*SERVICE_CHECK, http_path="/health"),
    ),
    SeedWorkload(
        "arbitrage-service",
        "Deployment",
        None,
        {"8002": 8002},
        SeedCheck(*SERVICE_CHECK, http_path="/health"),
    ),
    SeedWorkload(
        "prometheus",
        "Deployment",
        "prom/prometheus",
        {"9090": 9090},
        SeedCheck(30, 10, 3, http_path="/-/healthy"),
        volume=("/prometheus", "5Gi"),
        config_paths=("/etc/prometheus/prometheus.yml",),
        args_contain=(
            "--config.file=/etc/prometheus/prometheus.yml",
            "--storage.tsdb.path=/prometheus",
            "--storage.tsdb.retention.time=30d",
        ),
    ),
    SeedWorkload(
        "grafana",
        "Deployment",
        "grafana/grafana",
        {"3001": 3000},
        SeedCheck(30, 10, 3, http_path="/api/health"),
        volume=("/var/lib/grafana", "100Mi"),
        env={"GF_SECURITY_ADMIN_USER": "admin", "GF_INSTALL_PLUGINS": "grafana-piechart-panel"},
        secret_env=("GF_SECURITY_ADMIN_PASSWORD",),
        config_paths=("/etc/grafana/provisioning/datasources/datasources.yaml",),
    ),
    SeedWorkload(
        "monitoring-ui",
        "Deployment",
        None,
        {"3000": 3000},
        SeedCheck(30, 10, 3, http_path="/api/health"),
        env={
            "API_GATEWAY_URL": "http://mastertrade-api-gateway:8080",
            "DATA_ACCESS_API_URL": "http://mastertrade-data-access-api:8005",
        },
    ),
]

SEED_START_PERIOD = 60


def workload(objects: dict[tuple[str, str], Manifest], seed: SeedWorkload) -> Manifest:
    return objects[(seed.kind, RELEASE_PREFIX + seed.name)]


def container(objects: dict[tuple[str, str], Manifest], seed: SeedWorkload) -> dict[str, Any]:
    containers: list[dict[str, Any]] = workload(objects, seed)["spec"]["template"]["spec"][
        "containers"
    ]
    assert len(containers) == 1
    return containers[0]


def environment(objects: dict[tuple[str, str], Manifest], seed: SeedWorkload) -> dict[str, Any]:
    """Plain env of the container: its ConfigMap's data plus literal `env` values."""
    found: dict[str, Any] = {}
    spec = container(objects, seed)
    for source in spec.get("envFrom", []):
        found.update(objects[("ConfigMap", source["configMapRef"]["name"])]["data"])
    for entry in spec.get("env", []):
        found[entry["name"]] = entry.get("value", entry.get("valueFrom"))
    return found


@pytest.fixture(scope="module")
def objects(default_render: list[Manifest]) -> dict[tuple[str, str], Manifest]:
    return by_kind_and_name(default_render)


def test_the_seed_has_fourteen_workloads(objects: dict[tuple[str, str], Manifest]) -> None:
    workloads = [k for k in objects if k[0] in {"Deployment", "StatefulSet"}]
    assert len(SEED) == 14
    assert sorted(name for _, name in workloads) == sorted(RELEASE_PREFIX + s.name for s in SEED)


@pytest.mark.parametrize("seed", SEED, ids=lambda s: s.name)
class TestSeedWorkload:
    def test_image(self, objects: dict[tuple[str, str], Manifest], seed: SeedWorkload) -> None:
        image = container(objects, seed)["image"]
        if seed.image is None:
            assert image.endswith("/mastertrade/mastertrade:0.1.0")
        elif ":" in seed.image:
            assert image == f"docker.io/{seed.image}"
        else:  # the seed says :latest; the chart pins a real version instead
            repository, tag = image.removeprefix("docker.io/").rsplit(":", 1)
            assert repository == seed.image
            assert tag not in {"", "latest"}

    def test_ports(self, objects: dict[tuple[str, str], Manifest], seed: SeedWorkload) -> None:
        service = objects[("Service", RELEASE_PREFIX + seed.name)]
        container_ports = {p["name"]: p["containerPort"] for p in container(objects, seed)["ports"]}
        rendered = {
            str(p["port"]): container_ports[p["targetPort"]] for p in service["spec"]["ports"]
        }
        assert rendered == seed.ports

    def test_resources(self, objects: dict[tuple[str, str], Manifest], seed: SeedWorkload) -> None:
        resources = container(objects, seed)["resources"]
        if seed.limits is not None:
            assert (resources["limits"]["cpu"], resources["limits"]["memory"]) == seed.limits
        if seed.requests is not None:
            assert (resources["requests"]["cpu"], resources["requests"]["memory"]) == seed.requests
        assert set(resources) == {"limits", "requests"}

    def test_health_check(
        self, objects: dict[tuple[str, str], Manifest], seed: SeedWorkload
    ) -> None:
        spec = container(objects, seed)
        readiness, liveness, startup = (
            spec["readinessProbe"],
            spec["livenessProbe"],
            spec["startupProbe"],
        )
        for probe in (readiness, liveness):
            assert probe["periodSeconds"] == seed.check.interval
            assert probe["timeoutSeconds"] == seed.check.timeout
            assert probe["failureThreshold"] == seed.check.retries
        assert startup["periodSeconds"] * startup["failureThreshold"] >= SEED_START_PERIOD
        if seed.check.http_path is not None:
            assert readiness["httpGet"]["path"] == seed.check.http_path
            assert readiness["httpGet"]["port"] == spec["ports"][0]["name"]
        else:
            assert seed.check.exec_contains is not None
            assert seed.check.exec_contains in " ".join(readiness["exec"]["command"])
            assert liveness["exec"] == readiness["exec"]

    def test_volume(self, objects: dict[tuple[str, str], Manifest], seed: SeedWorkload) -> None:
        mounts = {m["name"]: m["mountPath"] for m in container(objects, seed)["volumeMounts"]}
        if seed.volume is None:
            assert "data" not in mounts
            return
        path, size = seed.volume
        assert mounts["data"] == path
        spec = workload(objects, seed)["spec"]
        if seed.kind == "StatefulSet":
            (claim,) = spec["volumeClaimTemplates"]
        else:
            claim_name = next(
                v["persistentVolumeClaim"]["claimName"]
                for v in spec["template"]["spec"]["volumes"]
                if v["name"] == "data"
            )
            claim = objects[("PersistentVolumeClaim", claim_name)]
        assert claim["spec"]["resources"]["requests"]["storage"] == size

    def test_settings(self, objects: dict[tuple[str, str], Manifest], seed: SeedWorkload) -> None:
        env = environment(objects, seed)
        for name, value in seed.env.items():
            assert env[name] == value, name
        for name in seed.secret_env:
            assert "secretKeyRef" in env[name], f"{name} must come from a Secret"
        for name in seed.connections:
            assert name in env, f"{name} missing"

    def test_config_files(
        self, objects: dict[tuple[str, str], Manifest], seed: SeedWorkload
    ) -> None:
        mounted = {m["mountPath"] for m in container(objects, seed)["volumeMounts"]}
        assert set(seed.config_paths) <= mounted

    def test_command_line(
        self, objects: dict[tuple[str, str], Manifest], seed: SeedWorkload
    ) -> None:
        spec = container(objects, seed)
        words = [*spec.get("command", []), *spec.get("args", [])]
        for expected in seed.args_contain:
            assert expected in words


def test_seed_urls_point_at_the_services(objects: dict[tuple[str, str], Manifest]) -> None:
    strategy = next(s for s in SEED if s.name == "strategy-service")
    env = environment(objects, strategy)
    assert env["DATABASE_URL"] == (
        "postgresql://mastertrade:$(POSTGRES_PASSWORD)@mastertrade-postgres:5432/mastertrade"
    )
    assert (
        env["RABBITMQ_URL"] == "amqp://mastertrade:$(RABBITMQ_PASSWORD)@mastertrade-rabbitmq:5672/"
    )
    assert env["REDIS_URL"] == "redis://mastertrade-redis:6379/0"


def test_prometheus_scrapes_every_fifteen_seconds(objects: dict[tuple[str, str], Manifest]) -> None:
    config = yaml.safe_load(
        objects[("ConfigMap", "mastertrade-prometheus-files")]["data"]["prometheus.yml"]
    )
    assert config["global"]["scrape_interval"] == "15s"

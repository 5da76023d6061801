"""Bad values are refused at `helm install` time with a message that says what to fix."""

from __future__ import annotations

import pytest

from mastertrade_model import load_default_values
from tests.helm import render, render_failure

CATALOG = load_default_values().workloads

CASES = [
    pytest.param(
        ["workloads.strategyService.replicas=-1"],
        ["/workloads/strategyService/replicas", "minimum"],
        id="negative-replicas",
    ),
    pytest.param(
        ["workloads.strategyservice.replicas=5"],
        ["strategyservice", "strategyService"],
        id="misspelt-workload",
    ),
    pytest.param(
        ["workloads.redis.replica=3"],
        ["/workloads/redis", "replica"],
        id="misspelt-field",
    ),
    pytest.param(
        ["workloads.postgres.resources.limits.memory=4GB"],
        ["/workloads/postgres/resources/limits/memory"],
        id="memory-unit",
    ),
    pytest.param(
        ["settings.trading.TRADING_ENVIRONMENT=production"],
        ["/settings/trading/TRADING_ENVIRONMENT", "paper", "live"],
        id="trading-environment",
    ),
    pytest.param(
        ["settings.risk.MAX_POSITION_SIZE_PCT=20"],
        ["/settings/risk/MAX_POSITION_SIZE_PCT", "maximum"],
        id="percent-not-fraction",
    ),
    pytest.param(
        ["settings.strategy.GENERATION_TIME=3am"],
        ["/settings/strategy/GENERATION_TIME"],
        id="generation-time",
    ),
    pytest.param(
        ["auth.postgresPassword=chosen"],
        ["additional properties 'postgresPassword' not allowed", "/auth"],
        id="password-in-values",
    ),
    pytest.param(
        ["settings.trading.TRADING_ENVIRONMENT=live"],
        ["TRADING_ENVIRONMENT=live", "apiKeys.existingSecret"],
        id="live-without-api-keys",
    ),
    pytest.param(
        [
            "settings.trading.TRADING_ENVIRONMENT=live",
            "apiKeys.existingSecret=keys",
            "settings.risk.CIRCUIT_BREAKER_ENABLED=false",
        ],
        ["CIRCUIT_BREAKER_ENABLED=true"],
        id="live-without-circuit-breaker",
    ),
    pytest.param(
        ["workloads.postgres.enabled=false"],
        ["depends on workloads.postgres, which is disabled"],
        id="dependency-disabled",
    ),
    pytest.param(
        # Every workload that talks to RabbitMQ off as well: only the schema Job still needs it,
        # and it would wait for a broker that never comes
        [f"workloads.{key}.enabled=false" for key in CATALOG if key != "postgres"],
        [
            "migrations.enabled",
            "needs RabbitMQ",
            "workloads.rabbitmq is disabled",
            "external.rabbitmq.host",
            "migrations.enabled=false",
        ],
        id="schema-job-without-rabbitmq",
    ),
    pytest.param(
        ["workloads.rabbitmq.enabled=false"],
        ["workloads.rabbitmq is disabled", "external.rabbitmq.host"],
        id="rabbitmq-disabled",
    ),
    pytest.param(
        ["workloads.redis.enabled=false"],
        ["depends on workloads.redis, which is disabled", "external.redis.host"],
        id="redis-disabled",
    ),
    pytest.param(
        ["image.preStopSleepSeconds=60"],
        ["image.terminationGracePeriodSeconds (50) must exceed image.preStopSleepSeconds (60)"],
        id="grace-shorter-than-prestop-sleep",
    ),
    pytest.param(
        # an upgrade from a version where the executor alone read the paper fee: backtests
        # would charge settings.costs' fee and paper trading this one
        [
            "workloads.orderExecutor.extraEnv[0].name=PAPER_FEE_RATE",
            "workloads.orderExecutor.extraEnv[0].value=0.00075",
        ],
        ["workloads.orderExecutor.extraEnv sets PAPER_FEE_RATE", "settings.costs.PAPER_FEE_RATE"],
        id="shared-setting-per-workload",
    ),
    pytest.param(
        ["workloads.apiGateway.dependsOn={postgres,nowhere}"],
        ["/workloads/apiGateway/dependsOn/1", "must be one of", "marketDataService"],
        id="unknown-dependency",
    ),
]


@pytest.mark.parametrize(("sets", "expected"), CASES)
def test_bad_values_are_refused_with_a_clear_message(sets: list[str], expected: list[str]) -> None:
    message = render_failure(sets=sets)
    for fragment in expected:
        assert fragment in message, message


@pytest.mark.parametrize(
    "sets",
    [
        pytest.param(["migrations.enabled=false"], id="no-schema-job"),
        pytest.param(
            ["external.rabbitmq.host=mq.example.com", "auth.existingSecret=mine"],
            id="managed-rabbitmq",
        ),
    ],
)
def test_postgres_alone_is_accepted_when_nothing_waits_for_rabbitmq(sets: list[str]) -> None:
    """The way out each message names works: PostgreSQL alone, without the schema Job or with
    a managed broker."""
    only_postgres = [f"workloads.{key}.enabled=false" for key in CATALOG if key != "postgres"]
    manifests = render(sets=[*only_postgres, *sets])
    jobs = {m["metadata"]["name"] for m in manifests if m["kind"] == "Job"}
    assert ("mastertrade-migrate" in jobs) == ("migrations.enabled=false" not in sets)
    assert {m["metadata"]["name"] for m in manifests if m["kind"] == "StatefulSet"} == {
        "mastertrade-postgres"
    }

"""Managed infrastructure: PostgreSQL, RabbitMQ and Redis outside the release (RDS, Amazon MQ,
ElastiCache...). A managed host replaces the in-cluster workload; every connection, the schema
Job and the backup go there; passwords must come from the user."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate
import pytest

from mastertrade_model import load_values
from mastertrade_model.values import Role
from tests.helm import Manifest, of_kind, render, render_failure

pytestmark = pytest.mark.chart

MANAGED: dict[str, Any] = {
    "auth": {"existingSecret": "platform-credentials"},
    "external": {
        "database": {"host": "orders.cluster-abc.eu-west-1.rds.amazonaws.com", "port": 5433,
                     "tls": True},
        "rabbitmq": {"host": "b-1.mq.eu-west-1.amazonaws.com", "port": 5671, "tls": True,
                     "managementUrl": "https://b-1.mq.eu-west-1.amazonaws.com"},
        "redis": {"host": "cache.abc.euw1.cache.amazonaws.com", "port": 6380, "tls": True,
                  "passwordKey": "redis-password"},
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def objects() -> list[Manifest]:
    return render(values=MANAGED)


def env_of(objects: list[Manifest], variable: str) -> set[str]:
    found = set()
    for manifest in objects:
        spec = manifest.get("spec", {})
        template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get(
            "template", {}
        )
        for container in template.get("spec", {}).get("containers", []):
            for entry in container.get("env", []):
                if entry["name"] == variable:
                    found.add(entry.get("value") or str(entry.get("valueFrom")))
    return found


def test_managed_servers_replace_the_in_cluster_workloads(objects: list[Manifest]) -> None:
    names = {o["metadata"]["name"] for o in objects}
    for workload in ("postgres", "rabbitmq", "redis"):
        assert not any(name.endswith(f"-{workload}") for name in names), workload
        assert not any(f"-{workload}-" in name for name in names), workload
    assert not [p for p in of_kind(objects, "PersistentVolumeClaim") if "postgres" in str(p)]
    assert not [o for o in objects if o["kind"] == "Secret"], "passwords are the user's"


def test_connections_go_to_the_managed_servers_over_tls(objects: list[Manifest]) -> None:
    (database,) = env_of(objects, "DATABASE_URL")
    url = urlsplit(database.replace("$(", "").replace(")", ""))
    assert (url.hostname, url.port) == ("orders.cluster-abc.eu-west-1.rds.amazonaws.com", 5433)
    assert parse_qs(url.query) == {"sslmode": ["require"]}
    (broker,) = env_of(objects, "RABBITMQ_URL")
    assert broker.startswith("amqps://") and "@b-1.mq.eu-west-1.amazonaws.com:5671/" in broker
    (cache,) = env_of(objects, "REDIS_URL")
    assert cache == "rediss://:$(REDIS_PASSWORD)@cache.abc.euw1.cache.amazonaws.com:6380/0"
    (password,) = env_of(objects, "REDIS_PASSWORD")
    assert "platform-credentials" in password and "redis-password" in password


def test_schema_job_and_backups_follow(objects: list[Manifest]) -> None:
    assert [j["metadata"]["name"] for j in of_kind(objects, "Job")] == ["mastertrade-migrate"]
    assert env_of(objects, "PGHOST") == {"orders.cluster-abc.eu-west-1.rds.amazonaws.com"}
    assert env_of(objects, "PGPORT") == {"5433"}
    assert env_of(objects, "PGSSLMODE") == {"require"}
    assert env_of(objects, "RABBITMQ_MANAGEMENT_URL") == {"https://b-1.mq.eu-west-1.amazonaws.com"}


def test_rendered_objects_are_valid_kubernetes_objects(objects: list[Manifest]) -> None:
    for manifest in objects:
        kubernetes_validate.validate(manifest, "1.35.0", strict=True)


def test_the_model_agrees_on_what_runs() -> None:
    values = load_values(MANAGED)
    for role in (Role.DATABASE, Role.RABBITMQ, Role.REDIS):
        assert not values.runs(values.provider_key(role))
    assert values.runs(values.provider_key(Role.METRICS))


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["external.database.host=db.example.com"], "auth.existingSecret"),
        (
            ["external.redis.host=r.example.com", "external.redis.passwordKey=k"],
            "auth.existingSecret",
        ),
        (["workloads.postgres.enabled=false"], "external.database.host"),
        (["external.database.host=not a host"], "/external/database/host"),
    ],
)
def test_what_cannot_work_is_refused_saying_what_to_set(sets: list[str], message: str) -> None:
    assert message in render_failure(sets=sets)

"""The operator reconciling MasterTradeDeployments: real kopf, as `runner.build_operator`
assembles it, against the kmock emulator extended with the API server's behaviour
(`apiserver.py`). The tests play the controllers (readiness) and the users (edits, deletes)."""

from __future__ import annotations

import asyncio
import time
from functools import partial

import aiohttp
import pytest
from prometheus_client import generate_latest

from mastertrade_operator.kube import USER_AGENT
from mastertrade_operator.render.desired import HASH_ANNOTATION
from mastertrade_operator.runner import Assembly
from tests.operator.apiserver import ApiServer
from tests.operator.cluster import (
    child,
    children,
    create_mtd,
    eventually,
    mark_ready,
    mtd,
    path_of,
    rendered_count,
    rendered_names,
    request,
    roll_out,
    status_of,
    writes,
)

pytestmark = [pytest.mark.operator, pytest.mark.kmock(cls=ApiServer)]

NAME = "mt"
PREFIX = "mt-mastertrade"
WORKLOADS = ("Deployment", "StatefulSet")


def phase(api: ApiServer) -> str | None:
    found: str | None = status_of(api, NAME).get("phase")
    return found


def condition(api: ApiServer, kind: str) -> dict[str, str]:
    conditions = status_of(api, NAME).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


def names(api: ApiServer, kind: str) -> set[str]:
    return {name for _, name in children(api, kind)}


def handled(api: ApiServer, name: str = NAME) -> bool:
    """kopf has finished the change handler (no retry pending) for the current spec."""
    annotations = (mtd(api, name) or {}).get("metadata", {}).get("annotations") or {}
    return "mastertrade.io/reconcile" not in annotations and bool(
        annotations.get("mastertrade.io/last-handled-configuration")
    )


def resync_count(operator: Assembly) -> float:
    (metric,) = operator.runtime.metrics.reconciles.collect()
    return float(
        sum(
            s.value
            for s in metric.samples
            if s.name.endswith("_total") and s.labels["trigger"] == "resync"
        )
    )


async def resyncs(operator: Assembly, count: int = 2) -> None:
    """Wait for `count` safety-net reconciles to run (a window measured in reconciles)."""
    target = resync_count(operator) + count
    await eventually(lambda: resync_count(operator) >= target, what=f"{count} resyncs")


async def settle(
    api: ApiServer, names: tuple[str, ...] = (NAME,), quiet: float = 0.6, timeout: float = 10.0
) -> None:
    """Wait until kopf is done with the changes and no write was made for `quiet` seconds."""
    for name in names:
        await eventually(partial(handled, api, name), timeout, what=f"{name} handled")
    deadline = time.monotonic() + timeout
    count, since = len(writes(api)), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "the operator kept writing"
        await asyncio.sleep(0.05)
        if len(writes(api)) != count:
            count, since = len(writes(api)), time.monotonic()


async def test_create_applies_infrastructure_first_owned_by_the_resource(
    api: ApiServer, operator: Assembly
) -> None:
    await create_mtd(api, NAME, {})
    await eventually(lambda: phase(api) == "Infrastructure", what="phase Infrastructure")
    assert names(api, "StatefulSet") == {f"{PREFIX}-{n}" for n in ("postgres", "rabbitmq", "redis")}
    assert names(api, "Deployment") == set() and names(api, "Job") == set()
    assert condition(api, "Progressing")["status"] == "True"
    assert condition(api, "Ready")["reason"] == "WaitingInfrastructure"
    uid = (mtd(api, NAME) or {})["metadata"]["uid"]
    for (kind, name), obj in children(api).items():
        if kind == "Secret":  # the credentials outlive the resource (with the PVCs)
            assert "ownerReferences" not in obj["metadata"]
            continue
        (owner,) = obj["metadata"]["ownerReferences"]
        assert owner == {
            "apiVersion": "mastertrade.io/v1alpha1",
            "kind": "MasterTradeDeployment",
            "name": NAME,
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }, (kind, name)
        assert obj["metadata"]["annotations"][HASH_ANNOTATION]
    applies = [
        r for r in api.log("PATCH") if r.params.get("fieldManager") == "mastertrade-operator"
    ]
    assert applies and all(r.params.get("force") == "true" for r in applies)


async def test_phases_advance_in_order_to_ready(api: ApiServer, operator: Assembly) -> None:
    started, before = time.monotonic(), len(api.log())
    await create_mtd(api, NAME, {})
    infrastructure = {f"{PREFIX}-{n}" for n in ("postgres", "rabbitmq", "redis")}
    await eventually(lambda: names(api, "StatefulSet") == infrastructure, what="infrastructure")
    await mark_ready(api, ("StatefulSet",))
    await eventually(lambda: phase(api) == "Migrating", what="phase Migrating")
    assert names(api, "Job") == {f"{PREFIX}-migrate"} and names(api, "Deployment") == set()
    await mark_ready(api, ("Job",))
    await eventually(lambda: phase(api) == "Services", what="phase Services")
    core = names(api, "Deployment")
    assert f"{PREFIX}-strategy-service" in core and f"{PREFIX}-grafana" not in core
    await mark_ready(api, ("Deployment",))
    await eventually(lambda: phase(api) == "Monitoring", what="phase Monitoring")
    status = await roll_out(api, NAME)
    elapsed, made = time.monotonic() - started, api.log()[before:]
    ours = [r for r in made if r.headers.get("User-Agent") == USER_AGENT]
    kopfs = [r for r in made if r.headers.get("User-Agent", "").startswith("kopf/")]
    print(
        f"\nfull reconcile: {elapsed:.2f}s, {len(ours)} operator requests "
        f"({len([r for r in ours if r.method != 'GET'])} writes) + {len(kopfs)} by kopf "
        f"({len([r for r in kopfs if r.method != 'GET'])} writes), {len(made)} in all"
    )
    assert status["readyWorkloads"] == "14/14"
    assert status["observedGeneration"] == 1 and status["tradingEnvironment"] == "paper"
    assert status["workloads"]["strategyService"] == {"ready": 1, "desired": 1}
    assert [(c["type"], c["status"]) for c in status["conditions"]] == [
        ("Ready", "True"),
        ("Progressing", "False"),
        ("Degraded", "False"),
    ]
    # what the chart renders, and the credentials Secret the operator makes itself
    assert len(children(api)) == rendered_count(NAME) + 1
    assert ("Secret", f"{NAME}-credentials") in children(api)
    assert "kopf" not in status  # kopf keeps its own state in annotations, not in our status
    expected = {"Applied", "WaitingInfrastructure", "WaitingMigrating", "AllWorkloadsReady"}
    await eventually(lambda: expected <= {e["reason"] for e in children_events(api)}, what="Events")


def children_events(api: ApiServer) -> list[dict[str, str]]:
    return [r.data for r in api.log("POST") if str(r.url.path).endswith("/events")]


async def test_steady_state_writes_nothing(api: ApiServer, operator: Assembly) -> None:
    await create_mtd(api, NAME, {})
    await roll_out(api, NAME)
    await settle(api)
    before_writes, before_reads = len(writes(api)), len(api.log("GET"))
    await asyncio.sleep(3.0)  # three resync periods: the safety net runs, and must not write
    made = writes(api)[before_writes:]
    reads = len(api.log("GET")) - before_reads
    print(f"\nsteady state: {len(made)} writes, {reads} reads in 3s")
    assert made == []
    assert reads >= 10, "the resync did not run"
    metrics = generate_latest(operator.runtime.metrics.registry).decode()
    assert 'mastertrade_operator_reconciles_total{result="ready",trigger="resync"}' in metrics
    managed = 'mastertrade_operator_managed_objects{name="mt",namespace="default"} '
    assert f"{managed}{float(rendered_count(NAME))}" in metrics


async def test_the_operator_reports_healthy(operator: Assembly, liveness: str) -> None:
    async def healthy() -> bool:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.get(liveness) as response:
                    return response.status == 200
            except aiohttp.ClientConnectionError:  # kopf opens the endpoint just after `ready`
                return False

    deadline = time.monotonic() + 10
    while not await healthy():
        assert time.monotonic() < deadline, "no /healthz"
        await asyncio.sleep(0.05)


async def test_resources_side_by_side_do_not_interfere(api: ApiServer, operator: Assembly) -> None:
    await create_mtd(api, "alpha", {})
    await create_mtd(api, "beta", {"workloads": {"strategyService": {"replicas": 2}}})
    await roll_out(api, "alpha")
    await roll_out(api, "beta")
    await settle(api, ("alpha", "beta"))
    assert child(api, "PodDisruptionBudget", "alpha-mastertrade-strategy-service") is None
    assert child(api, "PodDisruptionBudget", "beta-mastertrade-strategy-service") is not None
    start = len(api.log())
    await request(api, "DELETE", path_of("ConfigMap", "alpha-mastertrade-grafana-files"))
    await eventually(partial(child, api, "ConfigMap", "alpha-mastertrade-grafana-files"))
    touched = {r.url.path.rsplit("/", 1)[-1] for r in api.log()[start:] if r.method != "GET"}
    assert not {name for name in touched if name.startswith("beta")}, touched
    assert status_of(api, "beta")["readyWorkloads"] == "14/14"


async def test_a_deleted_child_returns(api: ApiServer, operator: Assembly) -> None:
    await create_mtd(api, NAME, {})
    await roll_out(api, NAME)
    for kind, name in [
        ("Deployment", f"{PREFIX}-risk-manager"),
        ("ConfigMap", f"{PREFIX}-grafana-files"),
    ]:
        old = child(api, kind, name)
        assert old is not None
        await request(api, "DELETE", path_of(kind, name))
        await eventually(partial(child, api, kind, name), what=f"{kind} {name} back")
        new = child(api, kind, name) or {}
        assert new["metadata"]["uid"] != old["metadata"]["uid"]
        assert (
            new["spec" if kind == "Deployment" else "data"]
            == old["spec" if kind == "Deployment" else "data"]
        )


async def test_a_finished_migration_removed_by_its_ttl_is_not_run_again(
    api: ApiServer, operator: Assembly
) -> None:
    await create_mtd(api, NAME, {})
    status = await roll_out(api, NAME)
    job = child(api, "Job", f"{PREFIX}-migrate") or {}
    hashes = status["completedJobs"]
    assert hashes == {f"{PREFIX}-migrate": job["metadata"]["annotations"][HASH_ANNOTATION]}
    await request(api, "DELETE", path_of("Job", f"{PREFIX}-migrate"))  # as the TTL controller
    await resyncs(operator)
    assert child(api, "Job", f"{PREFIX}-migrate") is None and phase(api) == "Ready"
    patch = {"spec": {"image": {"tag": "0.2.0"}}}  # a new image migrates again
    await request(api, "PATCH", path_of("MasterTradeDeployment", NAME), patch)
    await eventually(partial(child, api, "Job", f"{PREFIX}-migrate"), what="a new migration")
    await eventually(lambda: phase(api) == "Migrating", what="phase Migrating")


async def test_an_edited_child_is_reverted(api: ApiServer, operator: Assembly) -> None:
    await create_mtd(api, NAME, {})
    await roll_out(api, NAME)
    deployment = f"{PREFIX}-api-gateway"
    await request(api, "PATCH", path_of("Deployment", deployment), {"spec": {"replicas": 7}})
    config = f"{PREFIX}-risk-manager-env"
    level = (child(api, "ConfigMap", config) or {})["data"]["LOG_LEVEL"]
    await request(api, "PATCH", path_of("ConfigMap", config), {"data": {"LOG_LEVEL": "TRACE"}})
    await eventually(
        lambda: (child(api, "Deployment", deployment) or {})["spec"]["replicas"] == 1,
        what="replicas reverted",
    )
    await eventually(
        lambda: (child(api, "ConfigMap", config) or {})["data"]["LOG_LEVEL"] == level,
        what="the setting reverted",
    )


async def test_credentials_are_never_rotated_by_accident(
    api: ApiServer, operator: Assembly
) -> None:
    await create_mtd(api, NAME, {})
    await roll_out(api, NAME)
    secret = f"{NAME}-credentials"  # the operator's, never rendered by the chart
    data = (child(api, "Secret", secret) or {})["data"]
    await request(api, "DELETE", path_of("Secret", secret))
    await eventually(partial(child, api, "Secret", secret), what="the Secret back")
    assert (child(api, "Secret", secret) or {})["data"] == data  # the same passwords
    # A password set in the Secret by hand is the user's rotation: read back and kept
    await request(api, "PATCH", path_of("Secret", secret), {"data": {"postgres-password": "eA=="}})
    await resyncs(operator)
    assert (child(api, "Secret", secret) or {})["data"] == {**data, "postgres-password": "eA=="}


async def test_a_spec_change_applies_only_what_changed(api: ApiServer, operator: Assembly) -> None:
    await create_mtd(api, NAME, {})
    await roll_out(api, NAME)
    await settle(api)
    start = len(api.log())
    patch = {"spec": {"workloads": {"strategyService": {"replicas": 3}}}}
    await request(api, "PATCH", path_of("MasterTradeDeployment", NAME), patch)
    target = f"{PREFIX}-strategy-service"
    await eventually(lambda: (child(api, "Deployment", target) or {})["spec"]["replicas"] == 3)
    # the Ready status of generation 1 must not pass for the new one's
    await eventually(lambda: status_of(api, NAME)["observedGeneration"] == 2, what="observed")
    await roll_out(api, NAME)
    await settle(api)
    applied = {
        r.url.path.rsplit("/", 2)[-2:][0] + "/" + r.url.path.rsplit("/", 1)[-1]
        for r in api.log()[start:]
        if r.params.get("fieldManager") == "mastertrade-operator"
    }
    assert applied == {f"deployments/{target}", f"poddisruptionbudgets/{target}"}
    assert status_of(api, NAME)["observedGeneration"] == 2
    assert status_of(api, NAME)["workloads"]["strategyService"] == {"ready": 3, "desired": 3}


async def test_pause_stops_changes_and_says_so(api: ApiServer, operator: Assembly) -> None:
    await create_mtd(api, NAME, {})
    await roll_out(api, NAME)
    path = path_of("MasterTradeDeployment", NAME)
    await request(api, "PATCH", path, {"spec": {"paused": True}})
    await eventually(lambda: phase(api) == "Paused", what="phase Paused")
    assert condition(api, "Ready")["message"].startswith("spec.paused is true")
    await request(api, "DELETE", path_of("Deployment", f"{PREFIX}-grafana"))
    await resyncs(operator)  # the child's event and two safety-net runs: nothing comes back
    assert child(api, "Deployment", f"{PREFIX}-grafana") is None
    await request(api, "PATCH", path, {"spec": {"paused": False}})
    await eventually(lambda: child(api, "Deployment", f"{PREFIX}-grafana"), what="unpaused")


async def test_deletion_keeps_the_pvcs(api: ApiServer, operator: Assembly) -> None:
    await create_mtd(api, NAME, {})
    claims = rendered_names(NAME, "PersistentVolumeClaim")
    await eventually(lambda: names(api, "PersistentVolumeClaim") == claims, what="PVCs")
    obj = mtd(api, NAME) or {}
    assert obj["metadata"]["finalizers"] == ["mastertrade.io/finalizer"]
    await request(api, "DELETE", path_of("MasterTradeDeployment", NAME))
    await eventually(lambda: mtd(api, NAME) is None, what="the resource gone")
    await eventually(lambda: not names(api, "StatefulSet"), what="children collected")
    assert names(api, "PersistentVolumeClaim") == claims and claims
    left = children(api, "PersistentVolumeClaim").values()
    assert all(not claim["metadata"].get("ownerReferences") for claim in left)
    kept = await eventually(  # kopf posts Events in the background
        lambda: [e for e in children_events(api) if e["reason"] == "PvcsKept"], what="Event"
    )
    assert f"{PREFIX}-grafana-data" in kept[0]["message"]


async def test_deletion_deletes_the_pvcs_when_asked(api: ApiServer, operator: Assembly) -> None:
    await create_mtd(api, NAME, {"deletePvcsOnDelete": True})
    claims = rendered_names(NAME, "PersistentVolumeClaim")
    await eventually(lambda: names(api, "PersistentVolumeClaim") == claims, what="PVCs")
    await request(api, "DELETE", path_of("MasterTradeDeployment", NAME))
    await eventually(lambda: mtd(api, NAME) is None, what="the resource gone")
    kept = {("Secret", f"{NAME}-credentials")}  # the credentials outlive the resource
    await eventually(lambda: set(children(api)) == kept, what="everything else collected")


async def test_an_invalid_spec_is_degraded_and_nothing_is_applied(
    api: ApiServer, operator: Assembly
) -> None:
    # The CRD accepts it (a CEL rule on env names would be too costly); the operator does not
    await create_mtd(api, NAME, {"workloads": {"redis": {"env": {"my-var": "x"}}}})
    await eventually(lambda: phase(api) == "Degraded", what="phase Degraded")
    degraded = condition(api, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "InvalidSpec")
    assert "spec.workloads.redis.env.my-var" in degraded["message"]
    assert condition(api, "Ready")["status"] == "False"
    assert children(api) == {}
    assert not [r for r in api.log("PATCH") if r.params.get("fieldManager")]
    warnings = [e for e in children_events(api) if e["type"] == "Warning"]
    assert warnings and warnings[0]["reason"] == "InvalidSpec"

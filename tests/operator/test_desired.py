"""What the operator applies and when: owner and hash stamped on each object, drift found
field by field (server defaults tolerated, quantities compared by value), and the phases."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mastertrade_operator.render.desired import (
    HASH_ANNOTATION,
    build_desired,
    derive_apply_reason,
    find_drift,
    release_replicas,
    same_after_apply,
)
from mastertrade_operator.render.phases import Phase, build_phases
from tests.helm import operator_render

OWNER: dict[str, Any] = {
    "apiVersion": "mastertrade.io/v1alpha1",
    "kind": "MasterTradeDeployment",
    "metadata": {"name": "mt", "namespace": "trading", "uid": "u-1"},
}


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return operator_render()


def by_name(objects: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix))


def live_copy(desired: dict[str, Any]) -> dict[str, Any]:
    """The object as an API server returns it: with defaults and server fields added."""
    live = copy.deepcopy(desired)
    live["metadata"].update(uid="c-1", resourceVersion="7", generation=1)
    if live["kind"] == "Deployment":
        live["spec"]["progressDeadlineSeconds"] = 600
        container = live["spec"]["template"]["spec"]["containers"][0]
        container["terminationMessagePath"] = "/dev/termination-log"
        live["status"] = {"readyReplicas": 1}
    return live


def test_desired_objects_are_owned_and_hashed(rendered: list[dict[str, Any]]) -> None:
    for manifest in rendered:
        desired = build_desired(manifest, OWNER)
        assert len(desired["metadata"]["annotations"][HASH_ANNOTATION]) == 32
        if manifest["kind"] == "Secret":  # the credentials outlive the resource, as the PVCs
            assert "ownerReferences" not in desired["metadata"]
            continue
        (owner,) = desired["metadata"]["ownerReferences"]
        assert owner["uid"] == "u-1" and owner["controller"] and owner["blockOwnerDeletion"]
        assert len(desired["metadata"]["annotations"][HASH_ANNOTATION]) == 32
        assert "ownerReferences" not in manifest["metadata"]  # the render is left untouched


def test_the_hash_follows_the_content(rendered: list[dict[str, Any]]) -> None:
    deployment = by_name(rendered, "Deployment", "-strategy-service")
    changed = copy.deepcopy(deployment)
    changed["spec"]["replicas"] = 5
    first, again = build_desired(deployment, OWNER), build_desired(copy.deepcopy(deployment), OWNER)
    assert first == again
    assert (
        build_desired(changed, OWNER)["metadata"]["annotations"][HASH_ANNOTATION]
        != first["metadata"]["annotations"][HASH_ANNOTATION]
    )


def test_apply_reasons(rendered: list[dict[str, Any]]) -> None:
    desired = build_desired(by_name(rendered, "Deployment", "-api-gateway"), OWNER)
    live = live_copy(desired)
    assert derive_apply_reason(desired, None) == "missing"
    assert derive_apply_reason(desired, live) is None  # defaults and status do not count
    edited = copy.deepcopy(live)
    edited["spec"]["replicas"] = 7
    assert derive_apply_reason(desired, edited) == "drifted"
    relabelled = copy.deepcopy(live)
    relabelled["metadata"]["labels"]["app.kubernetes.io/instance"] = "other"
    assert derive_apply_reason(desired, relabelled) == "drifted"
    orphaned = copy.deepcopy(live)
    orphaned["metadata"]["ownerReferences"] = []
    assert derive_apply_reason(desired, orphaned) == "drifted"
    listed = {k: v for k, v in live.items() if k not in ("apiVersion", "kind")}
    assert derive_apply_reason(desired, listed) is None  # a real LIST's items have no kind
    annotated = copy.deepcopy(live)
    annotated["metadata"]["annotations"]["team.example/owner"] = "ops"
    assert derive_apply_reason(desired, annotated) is None
    stale = copy.deepcopy(live)
    stale["metadata"]["annotations"][HASH_ANNOTATION] = "0" * 32
    assert derive_apply_reason(desired, stale) == "changed"


@pytest.mark.parametrize(
    ("desired", "live", "drift"),
    [
        ({"cpu": "0.5"}, {"cpu": "500m"}, []),
        ({"memory": "1Gi"}, {"memory": "1024Mi"}, []),
        ({"cpu": "1"}, {"cpu": "1000m"}, []),
        ({"cpu": "1"}, {"cpu": "2"}, [".cpu"]),
        ({"a": [1, 2]}, {"a": [1]}, [".a"]),
        ({"a": [{"x": 1}]}, {"a": [{"x": 1, "y": 2}]}, []),
        ({"a": {"b": "c"}}, {"a": "c"}, [".a"]),
        ({"a": "text"}, {}, [".a"]),
        ({"a": "1Gi"}, {"a": "1Gix"}, [".a"]),
        ({"data": {}}, {}, []),
        ({"data": {"k": "v"}}, {}, [".data"]),
        # another manager's env var or port beside ours is no drift; ours missing or changed is
        (
            {"env": [{"name": "A", "value": "1"}]},
            {"env": [{"name": "B"}, {"name": "A", "value": "1"}]},
            [],
        ),
        (
            {"env": [{"name": "A", "value": "1"}]},
            {"env": [{"name": "A", "value": "2"}]},
            [".env[name=A].value"],
        ),
        ({"env": [{"name": "A"}]}, {"env": [{"name": "B"}]}, [".env[name=A]"]),
        ({"args": ["a", "b"]}, {"args": ["a", "b", "c"]}, [".args"]),
    ],
)
def test_find_drift(desired: Any, live: Any, drift: list[str]) -> None:
    assert find_drift(desired, live) == drift


def test_phases_follow_the_seed_start_order(rendered: list[dict[str, Any]]) -> None:
    plans = build_phases(rendered)
    assert [plan.phase for plan in plans] == [p for p in Phase if p != Phase.RESTORING]
    gates = {plan.phase: sorted(g["metadata"]["name"] for g in plan.gates) for plan in plans}
    assert gates[Phase.INFRASTRUCTURE] == [
        "mt-mastertrade-postgres",
        "mt-mastertrade-rabbitmq",
        "mt-mastertrade-redis",
    ]
    assert gates[Phase.MIGRATING] == ["mt-mastertrade-migrate"]
    assert gates[Phase.MONITORING] == [
        "mt-mastertrade-grafana",
        "mt-mastertrade-monitoring-ui",
        "mt-mastertrade-prometheus",
    ]
    assert len(gates[Phase.SERVICES]) == 8
    first = {o["kind"] for o in plans[0].objects}
    assert {"ConfigMap", "Service", "PersistentVolumeClaim", "StatefulSet"} <= first
    assert sum(len(plan.objects) for plan in plans) == len(rendered)


def test_a_restore_runs_after_the_schema_job_and_before_the_services() -> None:
    plans = build_phases(
        operator_render({"backup": {"restoreFrom": "mastertrade_20261125T020000Z.dump"}})
    )
    assert [plan.phase for plan in plans] == list(Phase)
    gates = {plan.phase: [g["metadata"]["name"] for g in plan.gates] for plan in plans}
    assert gates[Phase.MIGRATING] == ["mt-mastertrade-migrate"]
    assert gates[Phase.RESTORING] == ["mt-mastertrade-restore"]


def test_without_migrations_there_is_no_migrating_phase() -> None:
    plans = build_phases(operator_render({"migrations": {"enabled": False}}))
    assert Phase.MIGRATING not in [plan.phase for plan in plans]


def test_same_after_apply_ignores_what_the_server_bumps() -> None:
    live: dict[str, Any] = {
        "kind": "ConfigMap",
        "metadata": {"name": "c", "resourceVersion": "7"},
        "data": {},
    }
    dry = copy.deepcopy(live)
    dry["metadata"].update(resourceVersion="8", managedFields=[{"manager": "x"}], generation=2)
    assert same_after_apply(dry, live)
    dry["data"] = {"k": "v"}
    assert not same_after_apply(dry, live)


def test_release_replicas_leaves_the_render_alone(rendered: list[dict[str, Any]]) -> None:
    deployment = by_name(rendered, "Deployment", "-api-gateway")
    assert "replicas" not in release_replicas(deployment)["spec"]
    assert "replicas" in deployment["spec"]

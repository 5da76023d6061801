"""What the chart does with values beyond the seed: secrets, volumes, scaling, ordering, policy."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from mastertrade_model import load_default_values
from tests.helm import CHART, Manifest, by_kind_and_name, of_kind, render

CATALOG = load_default_values().workloads
PREFIX = "mastertrade-"


def pods_of(manifests: list[Manifest]) -> list[tuple[str, dict[str, Any]]]:
    """(name, pod template or pod) of everything that runs containers."""
    found = []
    for manifest in manifests:
        if manifest["kind"] in {"Deployment", "StatefulSet", "Job"}:
            found.append((manifest["metadata"]["name"], manifest["spec"]["template"]))
        elif manifest["kind"] == "CronJob":
            template = manifest["spec"]["jobTemplate"]["spec"]["template"]
            found.append((manifest["metadata"]["name"], template))
        elif manifest["kind"] == "Pod":
            found.append((manifest["metadata"]["name"], manifest))
    return found


def config_hashes(manifests: list[Manifest]) -> dict[str, str]:
    return {
        m["metadata"]["name"]: m["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        for m in manifests
        if m["kind"] in {"Deployment", "StatefulSet"}
    }


def test_credentials_are_made_once_in_the_cluster_by_a_narrow_hook(
    default_render: list[Manifest],
) -> None:
    """No password is rendered (a `helm template` re-render must not change one): a hook Job,
    before install and upgrade, makes the Secret the pods read, with an account allowed to
    create Secrets and read or patch only that one."""
    objects = by_kind_and_name(default_render)
    assert of_kind(default_render, "Secret") == []
    job = objects[("Job", PREFIX + "credentials")]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["credentials", PREFIX + "credentials"]
    rules = objects[("Role", PREFIX + "credentials")]["rules"]
    named = [rule for rule in rules if rule.get("resourceNames")]
    assert named == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [PREFIX + "credentials"],
         "verbs": ["get", "patch"]}
    ]  # fmt: skip
    unnamed = [rule for rule in rules if not rule.get("resourceNames")]
    assert [rule["verbs"] for rule in unnamed] == [["create"]]


def test_no_credential_is_written_into_a_configmap(profile_render: list[Manifest]) -> None:
    secret_like = ("PASSWORD", "PASS", "SECRET", "TOKEN", "API_KEY")
    for configmap in of_kind(profile_render, "ConfigMap"):
        for key, value in configmap.get("data", {}).items():
            assert not key.endswith(secret_like), f"{configmap['metadata']['name']}: {key}"
            assert "mastertrade123" not in value and "admin123" not in value


def test_existing_secrets_replace_the_generated_one() -> None:
    manifests = render([CHART / "ci" / "existing-secrets-values.yaml"])
    assert of_kind(manifests, "Secret") == []
    refs = [
        entry["valueFrom"]["secretKeyRef"]
        for _, pod in pods_of(manifests)
        for container in pod["spec"]["containers"]
        for entry in container.get("env", [])
        if "valueFrom" in entry
    ]
    credential_refs = [r for r in refs if not r.get("optional")]
    api_key_refs = [r for r in refs if r.get("optional")]
    assert credential_refs and {r["name"] for r in credential_refs} == {"my-credentials"}
    assert api_key_refs and {r["name"] for r in api_key_refs} == {"mastertrade-api-keys"}
    assert {"BINANCE_API_KEY", "TELEGRAM_BOT_TOKEN"} <= {r["key"] for r in api_key_refs}


def test_api_keys_are_absent_without_a_secret(default_render: list[Manifest]) -> None:
    for name, pod in pods_of(default_render):
        for container in pod["spec"]["containers"]:
            names = {entry["name"] for entry in container.get("env", [])}
            assert "BINANCE_API_KEY" not in names, name


def test_volumes_survive_uninstall_by_default(default_render: list[Manifest]) -> None:
    for claim in of_kind(default_render, "PersistentVolumeClaim"):
        assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    for statefulset in of_kind(default_render, "StatefulSet"):
        policy = statefulset["spec"]["persistentVolumeClaimRetentionPolicy"]
        assert policy == {"whenDeleted": "Retain", "whenScaled": "Retain"}


def test_volumes_can_be_deleted_with_the_release() -> None:
    manifests = render([CHART / "ci" / "minimal-values.yaml"])
    for claim in of_kind(manifests, "PersistentVolumeClaim"):
        assert "annotations" not in claim["metadata"]
    for statefulset in of_kind(manifests, "StatefulSet"):
        assert (
            statefulset["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"
        )


def test_scaling_sets_replicas_and_adds_disruption_budgets() -> None:
    manifests = render([CHART / "ci" / "scaled-values.yaml"])
    objects = by_kind_and_name(manifests)
    assert objects[("Deployment", PREFIX + "strategy-service")]["spec"]["replicas"] == 5
    assert objects[("Deployment", PREFIX + "market-data-service")]["spec"]["replicas"] == 3
    budgets = {m["metadata"]["name"] for m in of_kind(manifests, "PodDisruptionBudget")}
    assert budgets == {PREFIX + "strategy-service", PREFIX + "market-data-service"}


def test_a_settings_change_rolls_only_the_workloads_that_read_it(
    default_render: list[Manifest],
) -> None:
    before = config_hashes(default_render)
    after = config_hashes(render(values={"settings": {"risk": {"MAX_POSITION_SIZE_PCT": 0.1}}}))
    changed = {name for name in before if before[name] != after[name]}
    readers = {PREFIX + w.name for w in CATALOG.values() if "risk" in w.settings}
    assert changed == readers == {PREFIX + "risk-manager"}


def test_a_costs_change_rolls_the_executor_and_the_backtests(
    default_render: list[Manifest],
) -> None:
    """The paper executor charges the fee and the strategy service's backtests charge the
    same: a change reaches both, and nothing else."""
    before = config_hashes(default_render)
    after = config_hashes(render(values={"settings": {"costs": {"PAPER_FEE_RATE": 0.00075}}}))
    changed = {name for name in before if before[name] != after[name]}
    readers = {PREFIX + w.name for w in CATALOG.values() if "costs" in w.settings}
    assert changed == readers == {PREFIX + "order-executor", PREFIX + "strategy-service"}


def test_a_logging_change_rolls_every_mastertrade_service(default_render: list[Manifest]) -> None:
    before = config_hashes(default_render)
    after = config_hashes(render(sets=["settings.logging.LOG_LEVEL=DEBUG"]))
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {PREFIX + w.name for w in CATALOG.values() if "logging" in w.settings}
    assert PREFIX + "postgres" not in changed


def test_network_policies_follow_the_dependency_graph(default_render: list[Manifest]) -> None:
    pod_labels = {
        name: pod["metadata"]["labels"]
        for name, pod in pods_of(default_render)
        if not name.endswith("-test-health")
    }
    for key, workload in CATALOG.items():
        policy = by_kind_and_name(default_render)[("NetworkPolicy", PREFIX + workload.name)]
        label = f"mastertrade.io/uses-{workload.name}"
        sources = [
            rule["from"][0]["podSelector"]["matchLabels"]
            for rule in policy["spec"]["ingress"]
            if "from" in rule
        ]
        assert {label: "true"} in sources
        admitted = {name for name, labels in pod_labels.items() if labels.get(label) == "true"}
        dependents = {PREFIX + w.name for w in CATALOG.values() if key in w.dependsOn}
        if key in {"postgres", "rabbitmq"}:
            dependents |= {PREFIX + "migrate", PREFIX + "backup"}
        assert admitted == dependents, key
        open_rules = [rule for rule in policy["spec"]["ingress"] if "from" not in rule]
        assert bool(open_rules) == workload.exposed, key


def test_seed_dependencies_are_allowed(default_render: list[Manifest]) -> None:
    """The seed's depends_on, written from the seed: each service may reach what it needs."""
    seed_depends_on = {
        "market-data-service": {"postgres", "rabbitmq", "redis"},
        "strategy-service": {"postgres", "rabbitmq", "redis", "market-data-service"},
        "order-executor": {"postgres", "rabbitmq"},
        "risk-manager": {"postgres", "rabbitmq"},
        "alert-system": {"postgres", "rabbitmq"},
        "grafana": {"prometheus"},
        "monitoring-ui": {"api-gateway", "data-access-api"},
    }
    labels = {name: pod["metadata"]["labels"] for name, pod in pods_of(default_render)}
    for service, needs in seed_depends_on.items():
        for target in needs:
            assert labels[PREFIX + service].get(f"mastertrade.io/uses-{target}") == "true"


def scraped_pods(job: dict[str, Any]) -> tuple[str, str]:
    """(label selector, container port name) of a pod-discovery scrape job."""
    (sd,) = job["kubernetes_sd_configs"]
    assert sd["role"] == "pod" and sd["namespaces"] == {"names": ["trading"]}
    (selector,) = sd["selectors"]
    (keep,) = [r for r in job["relabel_configs"] if r.get("action") == "keep"]
    assert keep["source_labels"] == ["__meta_kubernetes_pod_container_port_name"]
    return selector["label"], keep["regex"]


def test_prometheus_may_scrape_every_metrics_port(default_render: list[Manifest]) -> None:
    objects = by_kind_and_name(default_render)
    config = yaml.safe_load(
        objects[("ConfigMap", PREFIX + "prometheus-files")]["data"]["prometheus.yml"]
    )
    jobs = {job["job_name"]: scraped_pods(job) for job in config["scrape_configs"]}
    # every pod of each workload, on its first port (by name), found in the release's namespace
    expected = {
        w.name: (f"app.kubernetes.io/instance=mastertrade,app.kubernetes.io/component={w.name}",
                 w.ports[0].name)
        for w in CATALOG.values() if w.metrics
    }  # fmt: skip
    expected["mastertrade-operator"] = (
        "app.kubernetes.io/instance=mastertrade,app.kubernetes.io/component=operator",
        "metrics",
    )
    assert jobs == expected
    prometheus_selector = {"app.kubernetes.io/component": "prometheus"}
    for key, workload in CATALOG.items():
        if not workload.metrics or key == "prometheus":
            continue
        policy = objects[("NetworkPolicy", PREFIX + workload.name)]
        selectors = [
            rule["from"][0]["podSelector"]["matchLabels"]
            for rule in policy["spec"]["ingress"]
            if "from" in rule
        ]
        assert any(prometheus_selector.items() <= s.items() for s in selectors), key


def test_schema_migration_runs_as_a_hook_with_database_access(
    default_render: list[Manifest],
) -> None:
    (job,) = [
        j for j in of_kind(default_render, "Job") if j["metadata"]["name"].endswith("migrate")
    ]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["migrate"]
    assert "DATABASE_URL" in {entry["name"] for entry in container["env"]}


def test_helm_test_checks_every_workload(default_render: list[Manifest]) -> None:
    tests = [
        m
        for m in of_kind(default_render, "Pod")
        if m["metadata"]["annotations"]["helm.sh/hook"] == "test"
    ]
    assert {m["metadata"]["name"] for m in tests} == {
        f"{PREFIX}{w.name}-test-health" for w in CATALOG.values()
    }
    gateway = next(m for m in tests if "api-gateway" in m["metadata"]["name"])
    assert (
        gateway["spec"]["containers"][0]["args"][-1] == "http://mastertrade-api-gateway:8080/health"
    )


def test_registry_mirror_pull_secrets_and_storage_class() -> None:
    manifests = render([CHART / "ci" / "mirror-values.yaml"])
    for name, pod in pods_of(manifests):
        assert pod["spec"]["imagePullSecrets"] == [{"name": "mirror-pull"}], name
        for container in pod["spec"]["containers"]:
            assert container["image"].startswith("registry.internal.example:5000/"), name
    services_image = by_kind_and_name(manifests)[("Deployment", PREFIX + "risk-manager")]
    assert services_image["spec"]["template"]["spec"]["containers"][0]["image"].endswith(
        "mastertrade/mastertrade@sha256:" + "0123456789abcdef" * 4
    )
    classes = {
        m["metadata"]["name"]: m["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"]
        for m in of_kind(manifests, "StatefulSet")
    }
    assert classes == {
        PREFIX + "postgres": "db-ssd",
        PREFIX + "rabbitmq": "fast-ssd",
        PREFIX + "redis": "fast-ssd",
    }


def test_disabled_workloads_render_nothing() -> None:
    manifests = render([CHART / "ci" / "minimal-values.yaml"])
    names = {m["metadata"]["name"] for m in manifests}
    assert not any("grafana" in name or "monitoring-ui" in name for name in names)
    assert of_kind(manifests, "NetworkPolicy") == []


def test_scheduling_overrides_reach_the_pod() -> None:
    manifests = render([CHART / "ci" / "minimal-values.yaml"])
    pod = by_kind_and_name(manifests)[("Deployment", PREFIX + "order-executor")]["spec"]["template"]
    assert pod["spec"]["nodeSelector"] == {"mastertrade.io/pool": "trading"}
    assert pod["spec"]["tolerations"][0]["value"] == "trading"
    assert pod["metadata"]["annotations"]["example.com/team"] == "execution"
    assert {"name": "HTTP_PROXY", "value": "http://proxy.internal:3128"} in pod["spec"][
        "containers"
    ][0]["env"]


@pytest.mark.parametrize("budget", [{"cpu": 4.0, "memory_gib": 8.0}])
def test_kind_profile_fits_a_laptop_cluster(budget: dict[str, float]) -> None:
    manifests = render([CHART / "values-kind.yaml"], hooks=False)
    cpu = memory = 0.0
    for _, pod in pods_of(manifests):
        for container in pod["spec"]["containers"]:
            requests = container["resources"]["requests"]
            cpu += parse_cpu(requests["cpu"])
            memory += parse_memory_gib(requests["memory"])
    # Leave half the machine to the kind node itself, kube-system and bursts
    assert cpu <= budget["cpu"] / 2
    assert memory <= budget["memory_gib"] / 2


def parse_cpu(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def parse_memory_gib(quantity: str) -> float:
    units = {"Ki": 2**-20, "Mi": 2**-10, "Gi": 1.0}
    return float(quantity[:-2]) * units[quantity[-2:]]


def test_kind_profile_pulls_only_the_mastertrade_image_from_the_node() -> None:
    manifests = render([CHART / "values-kind.yaml"], hooks=False)
    for name, pod in pods_of(manifests):
        (container,) = pod["spec"]["containers"]
        local = container["image"] == "mastertrade:dev"
        assert container["imagePullPolicy"] == ("Never" if local else "IfNotPresent"), name


def test_a_deleted_service_pod_serves_on_until_its_endpoint_is_gone(
    default_render: list[Manifest],
) -> None:
    """Every Pod of MasterTrade's image sleeps before its SIGTERM (so requests that kube-proxy
    still routes to it are answered), within a grace period that leaves the SIGTERM its time;
    0 turns the sleep off."""
    image = load_default_values().image
    services = [m for m in of_kind(default_render, "Deployment")
                if not CATALOG[key_of(m)].image]  # fmt: skip
    assert len(services) == sum(1 for w in CATALOG.values() if w.enabled and not w.image)
    for deployment in services:
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        sleep = {"sleep": {"seconds": image.preStopSleepSeconds}}
        assert container["lifecycle"]["preStop"] == sleep
        assert pod["terminationGracePeriodSeconds"] - image.preStopSleepSeconds >= 25 + 15
    manifests = render(sets=["image.preStopSleepSeconds=0"])
    assert not any("lifecycle" in c for _, pod in pods_of(manifests)
                   for c in pod["spec"]["containers"])  # fmt: skip


def key_of(manifest: Manifest) -> str:
    """The catalog key of a rendered workload."""
    name = manifest["metadata"]["name"].removeprefix(PREFIX)
    return next(key for key, w in CATALOG.items() if w.name == name)

"""The chart on a real node, as a user installs it: `helm install` of the chart with the locally
built images in a namespace enforcing the restricted Pod Security standard; all 14 workloads
Running and Ready with their real probes; cluster DNS names resolving in Pods; the schema Job's
tables; `helm test`; a PostgreSQL row surviving its Pod's deletion; the backup CronJob run by
hand writing a dump the restore Job brings back; `helm uninstall` keeping the data.

The tests run in file order on one release (each step builds on the one before)."""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm import CHART
from tests.node.cluster import NodeCluster, pod_ready, wait_for
from tests.node.conftest import FIGURES

pytestmark = pytest.mark.node

NAMESPACE = "mastertrade-node"
RELEASE = "mt"
PREFIX = f"{RELEASE}-mastertrade"
VALUES = Path(__file__).with_name("values-node.yaml")
WORKLOADS = 14
POSTGRES_POD = f"{PREFIX}-postgres-0"
READY_TIMEOUT = 900


def catalog() -> dict[str, dict[str, Any]]:
    """The chart's workload catalog (values.yaml), by key."""
    workloads: dict[str, dict[str, Any]] = yaml.safe_load((CHART / "values.yaml").read_text())[
        "workloads"
    ]
    return workloads


def restricted_namespace(cluster: NodeCluster, name: str) -> None:
    """A namespace where the real PodSecurity admission plugin enforces `restricted`."""
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted",
                    "pod-security.kubernetes.io/enforce-version=latest")  # fmt: skip


def workloads(cluster: NodeCluster, namespace: str) -> list[dict[str, Any]]:
    found = cluster.get("deployments,statefulsets", "-n", namespace,
                        "-l", "app.kubernetes.io/part-of=mastertrade")["items"]  # fmt: skip
    return [w for w in found if w["metadata"]["labels"].get("app.kubernetes.io/component")
            != "operator"]  # fmt: skip


def not_ready(cluster: NodeCluster, namespace: str) -> list[str]:
    """Names of the workloads whose desired replicas are not all ready and up to date."""
    waiting = []
    for workload in workloads(cluster, namespace):
        spec, status = workload["spec"], workload.get("status", {})
        wanted = spec.get("replicas", 1)
        if status.get("readyReplicas", 0) < wanted or status.get("updatedReplicas", 0) < wanted:
            waiting.append(str(workload["metadata"]["name"]))
    return waiting


def wait_all_ready(cluster: NodeCluster, namespace: str, count: int) -> None:
    def done() -> bool:
        return len(workloads(cluster, namespace)) == count and not not_ready(cluster, namespace)

    try:
        wait_for(done, READY_TIMEOUT, f"all {count} workloads Ready in {namespace}", every=3)
    except AssertionError as error:
        raise AssertionError(f"{error}; not Ready: {not_ready(cluster, namespace)}") from None


def psql(cluster: NodeCluster, sql: str, namespace: str = NAMESPACE) -> str:
    """SQL run by psql inside the PostgreSQL Pod, as the release's user, on its database."""
    return cluster.kubectl("exec", "-n", namespace, POSTGRES_POD, "-c", "postgres", "--",
                           "psql", "-v", "ON_ERROR_STOP=1", "-U", "mastertrade", "-d",
                           "mastertrade", "-tAc", sql).strip()  # fmt: skip


def pod_of(cluster: NodeCluster, component: str, namespace: str = NAMESPACE) -> str:
    pods = cluster.get("pods", "-n", namespace, "-l",
                       f"app.kubernetes.io/component={component}")["items"]  # fmt: skip
    running = [p for p in pods if pod_ready(p) and not p["metadata"].get("deletionTimestamp")]
    assert running, f"no Ready {component} Pod in {namespace}"
    return str(running[0]["metadata"]["name"])


def workload_pods(cluster: NodeCluster, namespace: str = NAMESPACE) -> list[str]:
    """Pods of Deployments and StatefulSets (not the Jobs' Pods, which hooks leave behind)."""
    return [
        str(pod["metadata"]["name"])
        for pod in cluster.get("pods", "-n", namespace)["items"]
        if any(o["kind"] != "Job" for o in pod["metadata"].get("ownerReferences") or [])
    ]


@pytest.fixture(scope="module")
def release(cluster: NodeCluster) -> Iterator[NodeCluster]:
    """The chart installed in a restricted namespace; the time to all Ready is a figure."""
    restricted_namespace(cluster, NAMESPACE)
    started = time.monotonic()
    cluster.helm("install", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(VALUES),
                 "--timeout", "15m")  # fmt: skip
    FIGURES["helm_install_returned_s"] = round(time.monotonic() - started, 1)
    try:
        wait_all_ready(cluster, NAMESPACE, WORKLOADS)
    finally:
        FIGURES["helm_install_to_all_ready_s"] = round(time.monotonic() - started, 1)
    yield cluster


def test_all_14_workloads_run_ready_under_the_restricted_standard(release: NodeCluster) -> None:
    names = sorted(str(w["metadata"]["name"]) for w in workloads(release, NAMESPACE))
    assert len(names) == WORKLOADS, names
    assert not not_ready(release, NAMESPACE)
    labels = release.get("namespace", NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = [p for p in release.get("pods", "-n", NAMESPACE)["items"]
            if p["status"]["phase"] == "Running"]  # fmt: skip
    assert len(pods) >= WORKLOADS
    for pod in pods:
        assert pod_ready(pod), pod["metadata"]["name"]
        for container in pod["spec"]["containers"]:
            # Real probes: every long-running container is checked by the kubelet
            assert container.get("readinessProbe"), (pod["metadata"]["name"], container["name"])
            assert container.get("livenessProbe"), (pod["metadata"]["name"], container["name"])
        statuses = pod["status"]["containerStatuses"]
        assert all(s["ready"] and "running" in s["state"] for s in statuses)


def test_pods_resolve_service_names_through_the_cluster_dns(release: NodeCluster) -> None:
    """glibc in a Pod (not the resolver's own code) resolves Service names via the search path."""
    service = release.get("service", f"{PREFIX}-postgres", "-n", NAMESPACE)
    gateway = pod_of(release, "api-gateway")
    script = (
        "import socket,sys\n"
        "print(socket.gethostbyname(sys.argv[1]))\n"
        "print(socket.gethostbyname(sys.argv[1] + '.' + sys.argv[2] + '.svc.cluster.local'))\n"
        "print(socket.gethostbyname(sys.argv[3]))\n"
        "try:\n    socket.gethostbyname('no-such-service')\nexcept OSError:\n"
        "    print('unknown')\n"
    )
    # A StatefulSet's Pod by its name under the headless Service
    pod_name = f"{POSTGRES_POD}.{PREFIX}-postgres-headless"
    output = release.kubectl("exec", "-n", NAMESPACE, gateway, "--", "python", "-c", script,
                             f"{PREFIX}-postgres", NAMESPACE, pod_name).split()  # fmt: skip
    ip = service["spec"]["clusterIP"]
    pod_ip = release.get("pod", POSTGRES_POD, "-n", NAMESPACE)["status"]["podIP"]
    assert output == [ip, ip, pod_ip, "unknown"]


def test_the_schema_job_created_the_schema(release: NodeCluster) -> None:
    versions = psql(release, "SELECT count(*) FROM schema_migrations").strip()
    migrations = sorted((Path(__file__).resolve().parents[2] / "services" / "mastertrade" /
                         "migrations" / "sql").glob("*.sql"))  # fmt: skip
    assert int(versions) == len(migrations) > 0
    tables = psql(release, "SELECT count(*) FROM information_schema.tables WHERE table_name IN "
                  "('candles', 'trades', 'strategies', 'backtests')")  # fmt: skip
    assert tables == "4"


def test_helm_test_passes(release: NodeCluster) -> None:
    output = release.helm("test", RELEASE, "-n", NAMESPACE, "--timeout", "10m")
    phases = re.findall(r"TEST SUITE:\s+(\S+)\n.*?Phase:\s+(\S+)", output, re.S)
    assert len(phases) == WORKLOADS, output
    assert all(phase == "Succeeded" for _, phase in phases), output


def test_prometheus_in_the_cluster_scrapes_every_workload_that_serves_metrics(
    release: NodeCluster,
) -> None:
    service = release.get("service", f"{PREFIX}-prometheus", "-n", NAMESPACE)
    url = f"http://{service['spec']['clusterIP']}:9090/api/v1/targets"
    expected = {w["name"] for w in catalog().values() if w.get("metrics")}

    def targets() -> dict[str, str]:
        with urllib.request.urlopen(url, timeout=10) as response:
            active = json.load(response)["data"]["activeTargets"]
        return {t["labels"]["job"]: f"{t['health']} {t.get('lastError', '')}" for t in active}

    def all_up() -> bool:
        return set(targets()) == expected and all(h.startswith("up") for h in targets().values())

    try:
        wait_for(all_up, 180, "every target up in Prometheus", every=5)
    except AssertionError:
        raise AssertionError(f"Prometheus targets: {targets()}, expected {expected}") from None


def gateway_health(url: str) -> tuple[int, str]:
    """The status of one request to the gateway's aggregated health (0: no answer at all) and,
    when it is not 200, what it said (which service, which error), for the failure message."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), ""
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code), error.read().decode(errors="replace")[:2000]
    except OSError as error:
        return 0, repr(error)


def test_a_rolling_update_of_one_service_fails_no_request_through_the_gateway(
    release: NodeCluster,
) -> None:
    """A changed risk setting restarts only the risk manager (its ConfigMap checksum), one Pod
    after the other; the gateway's aggregated health, which calls every service behind it
    through its Service, answers 200 to every request meanwhile."""
    gateway = release.get("service", f"{PREFIX}-api-gateway", "-n", NAMESPACE)
    url = f"http://{gateway['spec']['clusterIP']}:8080/api/v1/health"
    assert gateway_health(url)[0] == 200
    deployment = f"{PREFIX}-risk-manager"
    before = release.get("deployment", deployment, "-n", NAMESPACE)["metadata"]["generation"]
    others = {
        name: release.get("deployment", name, "-n", NAMESPACE)["metadata"]["generation"]
        for name in (f"{PREFIX}-api-gateway", f"{PREFIX}-order-executor")
    }
    statuses: list[int] = []
    answers: list[str] = []  # what each failed request said, with when it came
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            status, said = gateway_health(url)
            statuses.append(status)
            if status != 200:
                answers.append(f"{time.strftime('%H:%M:%S')} {status} {said}")
            time.sleep(0.2)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        release.helm("upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(VALUES),
                     "--set", "settings.risk.MAX_ORDERS_PER_MINUTE=61")  # fmt: skip
        release.kubectl("rollout", "status", f"deployment/{deployment}", "-n", NAMESPACE,
                        "--timeout=600s", timeout=620)  # fmt: skip
        time.sleep(5)  # requests after the old Pod is gone, too
    finally:
        stop.set()
        poller.join()
    after = release.get("deployment", deployment, "-n", NAMESPACE)["metadata"]["generation"]
    assert after > before, "the risk manager was not rolled"
    for name, generation in others.items():
        assert release.get("deployment", name, "-n", NAMESPACE)["metadata"]["generation"] == (
            generation
        ), f"{name} was rolled too"
    failed = [status for status in statuses if status != 200]
    FIGURES["rolling_update_requests"] = f"{len(statuses)} ({len(failed)} failed)"
    assert len(statuses) > 20 and not failed, (statuses, answers)


@pytest.fixture(scope="module")
def probe_value() -> str:
    return secrets.token_hex(8)


def test_a_postgres_row_survives_its_pod_being_deleted(
    release: NodeCluster, probe_value: str
) -> None:
    psql(release, "CREATE TABLE node_probe (value text PRIMARY KEY)")
    psql(release, f"INSERT INTO node_probe VALUES ('{probe_value}')")
    old_uid = release.get("pod", POSTGRES_POD, "-n", NAMESPACE)["metadata"]["uid"]
    release.kubectl("delete", "pod", POSTGRES_POD, "-n", NAMESPACE, "--wait=true", timeout=180)

    def new_pod_ready() -> bool:
        try:
            pod = release.get("pod", POSTGRES_POD, "-n", NAMESPACE)
        except RuntimeError:
            return False
        return pod["metadata"]["uid"] != old_uid and pod_ready(pod)

    wait_for(new_pod_ready, 300, "a new PostgreSQL Pod Ready", every=2)
    assert psql(release, "SELECT value FROM node_probe") == probe_value


def test_backup_cronjob_writes_a_dump_that_the_restore_job_brings_back(
    release: NodeCluster, probe_value: str
) -> None:
    cronjob = f"{PREFIX}-backup"
    release.kubectl("create", "job", "backup-by-hand", f"--from=cronjob/{cronjob}", "-n",
                    NAMESPACE)  # fmt: skip
    release.kubectl("wait", "--for=condition=complete", "job/backup-by-hand", "-n", NAMESPACE,
                    "--timeout=300s", timeout=320)  # fmt: skip
    log = release.kubectl("logs", "job/backup-by-hand", "-n", NAMESPACE)
    dumps = re.findall(r"wrote /backups/(mastertrade_\d{8}T\d{6}Z\.dump) \((\d+) bytes\)", log)
    assert len(dumps) == 1, log
    dump, size = dumps[0]
    assert int(size) > 0
    assert re.search(r"wrote /backups/rabbitmq_definitions_\S+\.json \(\d+ bytes\)", log), log

    psql(release, "DELETE FROM node_probe")
    assert psql(release, "SELECT count(*) FROM node_probe") == "0"
    # docs/backup-restore.md, "Restore a dump", the quiet way: the core services scaled to zero,
    # then restored. Two upgrades, not the one the docs show: the hook of a single upgrade ran
    # while the old Pods were still terminating, and their sessions' temporary tables (created
    # from `trades` with its defaults) made pg_restore --clean fail to drop the sequence
    core = [key for key, w in catalog().items() if w["component"] == "core"]
    scaled_down = [arg for key in core for arg in ("--set", f"workloads.{key}.replicas=0")]
    release.helm("upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(VALUES),
                 *scaled_down, "--timeout", "15m")  # fmt: skip
    core_names = {f"{PREFIX}-{catalog()[key]['name']}" for key in core}
    wait_for(lambda: not [p for p in workload_pods(release)
                          if p.rsplit("-", 2)[0] in core_names], 300,
             "the core services' Pods gone", every=2)  # fmt: skip
    release.helm("upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(VALUES),
                 *scaled_down, "--set", f"backup.restoreFrom={dump}",
                 "--timeout", "15m")  # fmt: skip
    restore_log = release.kubectl("logs", f"job/{PREFIX}-restore", "-n", NAMESPACE)
    assert f"restored /backups/{dump}" in restore_log, restore_log
    assert psql(release, "SELECT value FROM node_probe") == probe_value
    release.helm("upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(VALUES),
                 "--timeout", "15m")  # fmt: skip
    wait_all_ready(release, NAMESPACE, WORKLOADS)
    assert psql(release, "SELECT value FROM node_probe") == probe_value


def test_helm_uninstall_keeps_the_data(release: NodeCluster, probe_value: str) -> None:
    release.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "10m")
    wait_for(lambda: not workload_pods(release), 300, "every workload Pod gone", every=2)
    claims = {c["metadata"]["name"] for c in release.get("pvc", "-n", NAMESPACE)["items"]}
    assert f"data-{POSTGRES_POD}" in claims and f"{PREFIX}-backups" in claims, claims
    release.get("secret", f"{PREFIX}-credentials", "-n", NAMESPACE)  # kept with the data

    # The same release again, PostgreSQL only (no schema Job: its RabbitMQ is not running): it
    # opens the kept volume with the kept password
    others = [key for key in catalog() if key != "postgres"]
    disabled = [arg for key in others for arg in ("--set", f"workloads.{key}.enabled=false")]
    disabled += ["--set", "migrations.enabled=false"]
    release.helm("install", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(VALUES), *disabled,
                 "--timeout", "10m")  # fmt: skip
    wait_all_ready(release, NAMESPACE, 1)
    assert psql(release, "SELECT value FROM node_probe") == probe_value
    release.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "10m")

"""A real Prometheus (the Debian package) scrapes running services on loopback, with the chart's
own prometheus.yml and alerting rules, answers queries for their series, and posts a firing
alert to the alert system's Alertmanager API, which records it.

The chart's scrape jobs find pods through the Kubernetes API, which Debian's Prometheus is built
without: on loopback each job gets file discovery instead, listing what Kubernetes would report
for it (the pod's metrics port at the service's loopback port, another container port, a pending
pod), so the rendered relabelling decides, as in the cluster, which of them are scraped.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
import yaml

from mastertrade.catalog import find_service
from mastertrade.migrations.runner import migrate_database
from mastertrade_model import load_default_values
from tests.chart.test_config_files import files_of, required_tool
from tests.helm import render
from tests.infra import create_database, create_vhost, delete_vhost, drop_database, free_port

pytestmark = pytest.mark.infra

MASTERTRADE = str(Path(sys.executable).with_name("mastertrade"))
CATALOG = load_default_values().workloads
# The services run here, by their catalog key: trading state, alerts, market data
SERVED = {"riskManager": "risk_manager", "alertSystem": "alert_system",
          "marketDataService": "market_data_service"}  # fmt: skip
WAIT = 90.0
NAMESPACE = "trading"
T = TypeVar("T")


def wait_until(what: str, probe: Callable[[], T | None], timeout: float = WAIT) -> T:
    """Poll `probe` until it returns something; fail saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = probe()
        except (httpx.HTTPError, OSError):
            found = None
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.5)


def healthy(url: str) -> Callable[[], bool | None]:
    return lambda: httpx.get(url).status_code == 200 or None


def discovered(job: str, port: int, spare_port: int) -> list[dict[str, Any]]:
    """What Kubernetes pod discovery would find for a job, as file discovery target groups: the
    running pod's metrics port, another container port of it, and a pod still Pending."""

    def pod(name: str, port_name: str, phase: str, address: str) -> dict[str, Any]:
        labels = {
            "__meta_kubernetes_namespace": NAMESPACE,
            "__meta_kubernetes_pod_name": name,
            "__meta_kubernetes_pod_container_port_name": port_name,
            "__meta_kubernetes_pod_phase": phase,
        }
        return {"targets": [address], "labels": labels}

    metrics_port = next(w.ports[0].name for w in CATALOG.values() if w.name == job)
    return [
        pod(f"{job}-0", metrics_port, "Running", f"127.0.0.1:{port}"),
        pod(f"{job}-0", "spare", "Running", f"127.0.0.1:{spare_port}"),
        pod(f"{job}-1", metrics_port, "Pending", f"127.0.0.2:{port}"),
    ]


def loopback_config(text: str, ports: dict[str, int], alert_port: int, directory: Path) -> str:
    """The chart's prometheus.yml, each served job's pod discovery replaced by file discovery
    of what Kubernetes would report (its relabelling untouched), alerts to the alert system."""
    config = yaml.safe_load(text)
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    jobs = []
    for job in config["scrape_configs"]:
        name = job["job_name"]
        if name not in ports:
            continue
        job.pop("kubernetes_sd_configs")
        targets = directory / f"{name}.json"
        targets.write_text(json.dumps(discovered(name, ports[name], free_port())))
        job["file_sd_configs"] = [{"files": [str(targets)]}]
        jobs.append(job)
    config["scrape_configs"] = jobs
    (manager,) = config["alerting"]["alertmanagers"]
    manager["static_configs"] = [{"targets": [f"127.0.0.1:{alert_port}"]}]
    return yaml.safe_dump(config)


@pytest.fixture
def own_env(service_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A migrated database and a vhost of this test's own."""
    database, vhost = create_database("mastertrade_prom"), create_vhost("mastertrade_prom")
    try:
        asyncio.run(migrate_database(database, 30.0, lambda line: None))
        yield {**service_env, "DATABASE_URL": database, "RABBITMQ_URL": vhost}
    finally:
        drop_database(database)
        delete_vhost(vhost)


@pytest.fixture
def services(own_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, int]]:
    """The served services as processes on free loopback ports: job name -> port."""
    ports = {CATALOG[key].name: free_port() for key in SERVED}
    processes = []
    logs = []
    try:
        for key, service in SERVED.items():
            port = ports[CATALOG[key].name]
            log = (tmp_path / f"{service}.log").open("w")
            logs.append(log)
            processes.append(subprocess.Popen(
                [MASTERTRADE, "serve", service, "--host", "127.0.0.1", "--port", str(port)],
                env={**os.environ, **own_env}, stdout=log, stderr=subprocess.STDOUT,
            ))  # fmt: skip
        for key, service in SERVED.items():
            url = f"http://127.0.0.1:{ports[CATALOG[key].name]}{find_service(service).health_path}"
            wait_until(f"{service} healthy", healthy(url))
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()


@pytest.fixture
def prometheus(services: dict[str, int], tmp_path: Path) -> Iterator[str]:
    """/usr/bin/prometheus on a free port, its data in tmp_path, scraping the services."""
    files = files_of(render(), "prometheus")
    (tmp_path / "mastertrade-rules.yml").write_text(files["mastertrade-rules.yml"])
    config = tmp_path / "prometheus.yml"
    config.write_text(
        loopback_config(
            files["prometheus.yml"], services, services[CATALOG["alertSystem"].name], tmp_path
        )
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [required_tool("prometheus"), f"--config.file={config}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            "prometheus ready", lambda: httpx.get(f"{url}/-/ready").status_code == 200 or None
        )
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def series(prometheus: str, expr: str) -> list[dict[str, Any]] | None:
    return query(prometheus, expr) or None


def test_prometheus_scrapes_the_services_and_alerts_reach_the_alert_system(
    prometheus: str, services: dict[str, int], own_env: dict[str, str]
) -> None:
    jobs = set(services)

    def all_jobs(expr: str) -> list[dict[str, Any]] | None:
        found = query(prometheus, expr)
        return found if {s["metric"]["job"] for s in found} == jobs else None

    up = wait_until("every service scraped", lambda: all_jobs("up == 1"))
    for sample in up:
        assert sample["metric"]["tier"] == "core"
        assert sample["metric"]["pod"] == f"{sample['metric']['job']}-0"
        assert sample["metric"]["namespace"] == NAMESPACE
    # the relabelling kept one target per running pod: its metrics port, not the spare one
    # nor the pending pod
    targets = httpx.get(f"{prometheus}/api/v1/targets").json()["data"]
    assert sorted(t["labels"]["pod"] for t in targets["activeTargets"]) == sorted(
        f"{job}-0" for job in jobs
    )
    assert len(targets["droppedTargets"]) == 2 * len(jobs)
    # the platform's series, from every service
    wait_until(
        "request counters of every service",
        lambda: all_jobs("sum by (job) (mastertrade_http_requests_total)"),
    )
    # the risk manager's trading gauges and its queue backlog
    limit = wait_until(
        "the drawdown limit",
        lambda: series(prometheus, 'mastertrade_drawdown_limit_ratio{job="risk-manager"}'),
    )
    assert [s["metric"]["environment"] for s in limit] == ["paper"]
    assert float(limit[0]["value"][1]) == 0.15  # MAX_PORTFOLIO_DRAWDOWN_PCT's default
    backlog = wait_until(
        "the risk manager's queue backlog",
        lambda: series(prometheus, 'mastertrade_queue_messages{job="risk-manager"}'),
    )
    assert backlog[0]["metric"]["queue"] == "risk_manager.order_requests"
    assert float(backlog[0]["value"][1]) >= 0
    # the simulated market feeds the market data service: its freshness gauge is there
    fresh = wait_until(
        "market data events",
        lambda: series(prometheus, "mastertrade_market_data_last_event_timestamp_seconds"),
    )
    assert {s["metric"]["job"] for s in fresh} == {CATALOG["marketDataService"].name}

    # An admin turns the kill switch on: the rule fires, Prometheus posts it to the alert system
    async def kill_switch_on() -> None:
        connection = await asyncpg.connect(own_env["DATABASE_URL"])
        try:
            await connection.execute(
                "INSERT INTO risk_state (environment, kill_switch) VALUES ('paper', true) "
                "ON CONFLICT (environment) DO UPDATE SET kill_switch = true"
            )
        finally:
            await connection.close()

    asyncio.run(kill_switch_on())
    wait_until(
        "the kill-switch alert firing in Prometheus",
        lambda: [a for a in httpx.get(f"{prometheus}/api/v1/alerts").json()["data"]["alerts"]
                 if a["labels"]["alertname"] == "MasterTradeKillSwitchOn"
                 and a["state"] == "firing"] or None,
    )  # fmt: skip
    alert_system = f"http://127.0.0.1:{services[CATALOG['alertSystem'].name]}"
    recorded = wait_until(
        "the alert recorded by the alert system",
        lambda: [a for a in httpx.get(f"{alert_system}/api/v1/alerts").json()
                 if a["title"] == "[FIRING] MasterTradeKillSwitchOn"] or None,
    )  # fmt: skip
    (alert,) = recorded  # Prometheus re-sends it every minute: recorded once
    assert alert["message"] == "Kill switch on (paper): no orders are approved"

"""The seed's config files, as the chart renders them, are accepted by the programs that read them:
rabbitmq.config by Erlang's own parser, prometheus.yml by promtool, Grafana's provisioning by a
YAML parser and the shape Grafana documents."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.helm import Manifest, by_kind_and_name

PREFIX = "mastertrade-"


def files_of(manifests: list[Manifest], workload: str) -> dict[str, str]:
    data: dict[str, str] = by_kind_and_name(manifests)[("ConfigMap", f"{PREFIX}{workload}-files")][
        "data"
    ]
    return data


def required_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: .ci/run installs it (Debian package)")
    return path


def test_rabbitmq_config_parses_as_erlang_terms(
    default_render: list[Manifest], tmp_path: Path
) -> None:
    config = tmp_path / "rabbitmq.config"
    config.write_text(files_of(default_render, "rabbitmq")["rabbitmq.config"])
    check = (
        f'{{ok, [Terms]}} = file:consult("{config}"), '
        "true = is_list(proplists:get_value(rabbit, Terms)), halt(0)."
    )
    done = subprocess.run(
        [required_tool("erl"), "-noshell", "-eval", check],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_rabbitmq_definitions_declare_the_topology(default_render: list[Manifest]) -> None:
    definitions = json.loads(files_of(default_render, "rabbitmq")["definitions.json"])
    exchanges = {e["name"] for e in definitions["exchanges"]}
    queues = {q["name"] for q in definitions["queues"]}
    assert "users" not in definitions, "credentials never go into a ConfigMap"
    for binding in definitions["bindings"]:
        assert binding["source"] in exchanges
        assert binding["destination"] in queues


KUBERNETES_SD_KEYS = {"role", "namespaces", "selectors"}


def checkable_by_debians_promtool(config_text: str) -> str:
    """The config with each job's Kubernetes pod discovery replaced by a static target.

    Debian builds Prometheus without Kubernetes discovery (its promtool rejects the field), so
    the discovery block is checked here against the fields Prometheus documents for it
    (https://prometheus.io/docs/prometheus/latest/configuration/configuration/#kubernetes_sd_config)
    and everything else, relabelling included, by promtool.
    """
    config = yaml.safe_load(config_text)
    for job in config["scrape_configs"]:
        (discovery,) = job.pop("kubernetes_sd_configs")
        assert set(discovery) <= KUBERNETES_SD_KEYS, discovery
        assert discovery["role"] == "pod"
        assert set(discovery["namespaces"]) == {"names"} and discovery["namespaces"]["names"]
        for selector in discovery["selectors"]:
            assert set(selector) == {"role", "label"} and selector["role"] == "pod"
            for term in selector["label"].split(","):
                assert re.fullmatch(r"[a-z0-9./-]+=[A-Za-z0-9._-]+", term), term
        job["static_configs"] = [{"targets": [f"{job['job_name']}.invalid:80"]}]
    return yaml.safe_dump(config)


def test_prometheus_config_passes_promtool(default_render: list[Manifest], tmp_path: Path) -> None:
    files = files_of(default_render, "prometheus")
    for name, text in files.items():  # the rule files lie beside the config, as in the pod
        (tmp_path / name).write_text(text)
    config = tmp_path / "prometheus.yml"
    config.write_text(checkable_by_debians_promtool(files["prometheus.yml"]))
    done = subprocess.run(
        [required_tool("promtool"), "check", "config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr
    # promtool checked the alerting rules the config names too
    assert "mastertrade-rules.yml" in done.stdout + done.stderr


def test_grafana_provisioning_points_at_the_release(default_render: list[Manifest]) -> None:
    files = files_of(default_render, "grafana")
    datasources = yaml.safe_load(files["datasources.yaml"])
    (prometheus,) = datasources["datasources"]
    assert prometheus["url"] == f"http://{PREFIX}prometheus:9090"
    providers = yaml.safe_load(files["dashboards.yaml"])["providers"]
    assert providers[0]["options"]["path"] == "/etc/grafana/provisioning/dashboards/json"
    dashboard = json.loads(files["mastertrade-overview.json"])
    assert dashboard["uid"] == "mastertrade-overview"

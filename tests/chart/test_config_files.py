"""The seed's config files, as the chart renders them, are accepted by the programs that read them:
rabbitmq.config by Erlang's own parser, prometheus.yml by promtool, Grafana's provisioning by a
YAML parser and the shape Grafana documents."""

from __future__ import annotations

import json
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


def test_prometheus_config_passes_promtool(default_render: list[Manifest], tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(files_of(default_render, "prometheus")["prometheus.yml"])
    done = subprocess.run(
        [required_tool("promtool"), "check", "config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_grafana_provisioning_points_at_the_release(default_render: list[Manifest]) -> None:
    files = files_of(default_render, "grafana")
    datasources = yaml.safe_load(files["datasources.yaml"])
    (prometheus,) = datasources["datasources"]
    assert prometheus["url"] == f"http://{PREFIX}prometheus:9090"
    providers = yaml.safe_load(files["dashboards.yaml"])["providers"]
    assert providers[0]["options"]["path"] == "/etc/grafana/provisioning/dashboards/json"
    dashboard = json.loads(files["mastertrade-overview.json"])
    assert dashboard["uid"] == "mastertrade-overview"

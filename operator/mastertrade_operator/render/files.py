"""Config files of the workloads: the chart's files/<workload>/, rendered as Helm's `tpl` does.

Most files are static text. `prometheus/prometheus.yml` and `grafana/datasources.yaml` hold
template expressions; they are written out here in Python, producing the same text as the chart's
templates (the parity test compares them byte for byte through the config checksum). Any other
file that gains a template expression is refused rather than rendered wrongly.
"""

from __future__ import annotations

from collections.abc import Callable

from mastertrade_operator.render.context import Release

PROMETHEUS_HEADER = """\
# Prometheus configuration, mounted at the seed's path. Rendered by the chart: one scrape job per
# workload that serves /metrics, addressed by its Service name.
"""

GRAFANA_DATASOURCES_HEADER = """\
# Grafana datasource provisioning: the release's Prometheus.
apiVersion: 1
datasources:
  - name: Prometheus
    uid: mastertrade-prometheus
    type: prometheus
    access: proxy
"""


def build_prometheus_config(release: Release) -> str:
    """files/prometheus/prometheus.yml: one scrape job per workload serving /metrics."""
    interval = release.values.prometheus.scrapeInterval
    text = (
        f"{PROMETHEUS_HEADER}global:\n"
        f"  scrape_interval: {interval}\n"
        f"  evaluation_interval: {interval}\n"
        "  external_labels:\n"
        f"    mastertrade_release: {release.name}\n"
        "scrape_configs:"
    )
    for _, workload in release.enabled_workloads():
        if not workload.metrics:
            continue
        target = f"{release.workload_name(workload)}:{workload.ports[0].port}"
        text += (
            f"\n  - job_name: {workload.name}\n"
            "    metrics_path: /metrics\n"
            "    static_configs:\n"
            "      - targets:\n"
            f"          - {target}\n"
            "        # `job` names the workload;"
            " the services label their own series with `service`\n"
            "        labels:\n"
            f"          tier: {workload.component}"
        )
    return text + "\n"


def build_grafana_datasources(release: Release) -> str:
    """files/grafana/datasources.yaml: the release's Prometheus as the default datasource."""
    prometheus = release.workload("prometheus")
    url = f"http://{release.host_of('prometheus')}:{prometheus.ports[0].port}"
    return f"{GRAFANA_DATASOURCES_HEADER}    url: {url}\n    isDefault: true\n    editable: false\n"


TEMPLATED_FILES: dict[str, Callable[[Release], str]] = {
    "prometheus/prometheus.yml": build_prometheus_config,
    "grafana/datasources.yaml": build_grafana_datasources,
}


class TemplateFileError(ValueError):
    """A chart file holds template expressions that the Python renderer does not reproduce."""


def build_config_file(release: Release, key: str, file: str) -> str:
    """The text of files/<key>/<file> after Helm's `tpl`."""
    path = f"{key}/{file}"
    render = TEMPLATED_FILES.get(path)
    if render is not None:
        return render(release)
    text = release.chart.files.get(path)
    if text is None:
        raise TemplateFileError(f"workloads.{key}.configFiles: no file files/{path} in the chart")
    if "{{" in text:
        raise TemplateFileError(
            f"files/{path} holds template expressions: add its renderer to TEMPLATED_FILES"
        )
    return text

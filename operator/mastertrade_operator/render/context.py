"""The release being rendered, and the names and labels every object derives from it.

The Python side of `_helpers.tpl`: `Release` holds the typed values, the release name and
namespace and the chart's metadata, and answers what the named templates answer (fullname,
workload names, labels, images, the credentials Secret's name).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from mastertrade_operator.model.chart import Chart
from mastertrade_operator.model.values import Image, Values, Workload

Manifest = dict[str, Any]
Labels = dict[str, str]

MANAGED_BY = "mastertrade-operator"
"""`app.kubernetes.io/managed-by` of what the operator renders (Helm writes `Helm`)."""


def dns_name(text: str) -> str:
    """`trunc 63 | trimSuffix "-"`."""
    return text[:63].removesuffix("-")


@dataclass(frozen=True)
class Release:
    """One MasterTrade installation: values, release name, namespace and chart."""

    values: Values
    name: str
    namespace: str
    chart: Chart

    @cached_property
    def chart_name(self) -> str:
        """`mastertrade.name`."""
        return dns_name(self.values.nameOverride or self.chart.name)

    @cached_property
    def fullname(self) -> str:
        """`mastertrade.fullname`: the prefix of every object name."""
        if self.values.fullnameOverride:
            return dns_name(self.values.fullnameOverride)
        name = self.values.nameOverride or self.chart.name
        if name in self.name:
            return dns_name(self.name)
        return dns_name(f"{self.name}-{name}")

    @property
    def service_account_name(self) -> str:
        return self.fullname

    @property
    def credentials_secret_name(self) -> str:
        return self.values.auth.existingSecret or f"{self.fullname}-credentials"

    def workload(self, key: str) -> Workload:
        return self.values.workloads[key]

    def enabled_workloads(self) -> list[tuple[str, Workload]]:
        """Enabled workloads in Helm's `range` order (sorted keys)."""
        workloads = self.values.workloads
        return [(key, workloads[key]) for key in sorted(workloads) if workloads[key].enabled]

    def workload_name(self, workload: Workload) -> str:
        """`mastertrade.workloadName`: <fullname>-<workload name>."""
        return dns_name(f"{self.fullname}-{workload.name}")

    def host_of(self, key: str) -> str:
        """In-cluster host name of the workload with catalog key `key`."""
        return self.workload_name(self.workload(key))

    def labels(self) -> Labels:
        """`mastertrade.labels`, less `helm.sh/chart` and with the operator as manager."""
        return {
            "app.kubernetes.io/name": self.chart_name,
            "app.kubernetes.io/instance": self.name,
            "app.kubernetes.io/version": self.chart.app_version,
            "app.kubernetes.io/managed-by": MANAGED_BY,
            "app.kubernetes.io/part-of": "mastertrade",
        }

    def selector_labels(self, name: str) -> Labels:
        """`mastertrade.selectorLabels` of the workload called `name`."""
        return {
            "app.kubernetes.io/name": self.chart_name,
            "app.kubernetes.io/instance": self.name,
            "app.kubernetes.io/component": name,
        }

    def workload_labels(self, name: str, component: str) -> Labels:
        """`mastertrade.workloadLabels`."""
        return {
            **self.labels(),
            "app.kubernetes.io/component": name,
            "mastertrade.io/tier": str(component),
        }

    def metadata(self, name: str, labels: Labels) -> Manifest:
        return {"name": name, "namespace": self.namespace, "labels": labels}

    def image_ref(self, image: Image) -> str:
        """`mastertrade.image`: registry (or the global mirror), repository, tag or digest."""
        registry = self.values.global_.imageRegistry or image.registry
        ref = f"{registry}/{image.repository}" if registry else image.repository
        if image.digest:
            return f"{ref}@{image.digest}"
        return f"{ref}:{image.tag or self.chart.app_version}"

    def workload_image(self, workload: Workload) -> Image:
        """The image a workload runs: its own, or MasterTrade's."""
        return workload.image or self.values.image


def uses_label(name: str) -> str:
    """Pod label saying "this pod talks to workload <name>" (`mastertrade.usesLabel`)."""
    return f"mastertrade.io/uses-{name}"

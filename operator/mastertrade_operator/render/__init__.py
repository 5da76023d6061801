"""Pure builders of the Kubernetes objects of one MasterTrade installation.

`render_all(values, release, namespace)` returns what `helm template <release> charts/mastertrade
-n <namespace>` renders with the same values, object for object, except what names the tool:
no `helm.sh/chart` label, `app.kubernetes.io/managed-by: mastertrade-operator`, no Helm hook or
resource-policy annotations (the schema and restore Jobs are rendered as plain Jobs), and no
`helm test` pods. Each `build_*` function is pure and takes the typed values; nothing here reads
files or talks to Kubernetes.
"""

from __future__ import annotations

from collections.abc import Mapping

from mastertrade_operator.model.chart import Chart, load_chart
from mastertrade_operator.model.values import Values
from mastertrade_operator.render.backup import build_backup_objects
from mastertrade_operator.render.configmaps import build_all_config_maps
from mastertrade_operator.render.context import MANAGED_BY, Manifest, Release
from mastertrade_operator.render.migration import build_migration_job
from mastertrade_operator.render.networkpolicies import build_network_policies
from mastertrade_operator.render.pdbs import build_pdbs
from mastertrade_operator.render.pvcs import build_pvcs
from mastertrade_operator.render.secrets import build_credentials_secret
from mastertrade_operator.render.serviceaccount import build_service_account
from mastertrade_operator.render.services import build_services
from mastertrade_operator.render.workloads import build_workloads

# Helm's install order of the kinds rendered here (a stable sort keeps each kind's own order)
KIND_ORDER = [
    "NetworkPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Service",
    "Deployment",
    "StatefulSet",
    "Job",
    "CronJob",
]

__all__ = ["KIND_ORDER", "MANAGED_BY", "Manifest", "Release", "build_release", "render_all"]


def build_release(
    values: Values, release: str, namespace: str, chart: Chart | None = None
) -> Release:
    """The rendering context; `chart` defaults to the chart beside the operator (read once)."""
    return Release(values=values, name=release, namespace=namespace, chart=chart or load_chart())


def render_all(
    values: Values,
    release: str,
    namespace: str,
    *,
    chart: Chart | None = None,
    existing_credentials: Mapping[str, str] | None = None,
) -> list[Manifest]:
    """Every object of the installation, in Helm's install order.

    `existing_credentials` is the data of the credentials Secret already in the cluster: its
    passwords are kept; any password neither given nor existing is generated.
    """
    context = build_release(values, release, namespace, chart)
    objects = [
        *build_network_policies(context),
        *build_pdbs(context),
        build_service_account(context),
        *build_credentials_secret(context, existing_credentials),
        *build_all_config_maps(context),
        *build_pvcs(context),
        *build_services(context),
        *build_workloads(context),
        *build_migration_job(context),
        *build_backup_objects(context),
    ]
    return sorted(objects, key=lambda manifest: KIND_ORDER.index(manifest["kind"]))

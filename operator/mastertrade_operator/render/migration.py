"""The schema Job: `mastertrade migrate`, the seed's "initialise database schema" step.

The chart runs it as a Helm hook; the operator runs it as its own phase (after the
infrastructure, before the services), so no hook annotations are rendered here.
"""

from __future__ import annotations

from mastertrade_operator.model.values import Component, Connection, Workload, WorkloadKind
from mastertrade_operator.render.context import Manifest, Release
from mastertrade_operator.render.env import build_secret_env
from mastertrade_operator.render.pod import (
    build_container_security_context,
    build_image_pull_secrets,
    build_pod_labels,
    build_pod_security_context,
)

MIGRATE = "migrate"


def migration_workload(release: Release) -> Workload:
    """The Job's pseudo-workload (as the chart's dict): core, talks to PostgreSQL and RabbitMQ."""
    template = release.workload("postgres")
    return template.model_copy(
        update={
            "name": MIGRATE,
            "component": Component.CORE,
            "kind": WorkloadKind.DEPLOYMENT,
            "dependsOn": ["postgres", "rabbitmq"],
            "connections": [Connection.DATABASE, Connection.RABBITMQ],
            "secretEnv": {},
            "apiKeys": [],
            "extraEnv": [],
            "securityContext": None,
        }
    )


def _container(release: Release, workload: Workload) -> Manifest:
    values = release.values
    return {
        "name": MIGRATE,
        "image": release.image_ref(values.image),
        "imagePullPolicy": values.image.pullPolicy or "IfNotPresent",
        "args": [MIGRATE],
        "env": build_secret_env(release, workload),
        "resources": values.migrations.resources.model_dump(),
        "securityContext": build_container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def build_migration_job(release: Release) -> list[Manifest]:
    """The Job, when migrations are enabled and PostgreSQL is part of the release."""
    values = release.values
    postgres = values.workloads.get("postgres")
    if not (values.migrations.enabled and postgres is not None and postgres.enabled):
        return []
    workload = migration_workload(release)
    pod_spec: Manifest = {
        "restartPolicy": "OnFailure",
        "serviceAccountName": release.service_account_name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        **build_image_pull_secrets(release),
        "securityContext": build_pod_security_context(release, None),
        "containers": [_container(release, workload)],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    job: Manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": release.metadata(
            f"{release.fullname}-{MIGRATE}", release.workload_labels(MIGRATE, "core")
        ),
        "spec": {
            "backoffLimit": values.migrations.backoffLimit,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": build_pod_labels(release, workload)},
                "spec": pod_spec,
            },
        },
    }
    return [job]

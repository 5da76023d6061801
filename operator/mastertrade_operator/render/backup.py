"""Backups (`backup.yaml`, `restore-job.yaml`, `_backup.tpl`): the seed's daily dump as a CronJob.

The backups volume, the ConfigMap with the chart's files/backup/ scripts, the CronJob running
`backup.sh` in PostgreSQL's image, and, when `backup.restoreFrom` names a dump, the Job running
`restore.sh` with it. The chart runs that Job as a Helm hook and keeps the volume on uninstall
through annotations; the operator renders neither annotation (it decides when Jobs run, and never
prunes PVCs).
"""

from __future__ import annotations

from mastertrade_operator.model.values import Component, Values, Workload
from mastertrade_operator.render.context import Manifest, Release, dns_name, uses_label
from mastertrade_operator.render.pod import (
    build_container_security_context,
    build_image_pull_secrets,
    build_pod_security_context,
)

BACKUP = "backup"
RESTORE = "restore"
BACKUP_DIR = "/backups"
SCRIPTS = ("backup.sh", "restore.sh")
CRONJOB_NAME_LIMIT = 52
"""Kubernetes refuses longer CronJob names (the Jobs it creates add 11 characters)."""


def backups_enabled(values: Values) -> bool:
    """The chart's condition: backups on, and PostgreSQL part of the release."""
    postgres = values.workloads.get("postgres")
    return values.backup.enabled and postgres is not None and postgres.enabled


def backup_cronjob_name(release: Release) -> str:
    """`mastertrade.backupCronJobName`: `<fullname>-backup`, 52 characters at most."""
    suffix = f"-{BACKUP}"
    return dns_name(release.fullname[: CRONJOB_NAME_LIMIT - len(suffix)]) + suffix


def _labels(release: Release, name: str) -> dict[str, str]:
    return release.workload_labels(name, Component.INFRASTRUCTURE)


def _secret_env(name: str, secret: str, key: str) -> Manifest:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def build_database_env(release: Release) -> list[Manifest]:
    """`mastertrade.backupEnv`: libpq's variables for the release's database, and BACKUP_DIR."""
    auth = release.values.auth
    return [
        {"name": "BACKUP_DIR", "value": BACKUP_DIR},
        {"name": "PGHOST", "value": release.host_of("postgres")},
        {"name": "PGPORT", "value": str(release.workload("postgres").ports[0].port)},
        {"name": "PGUSER", "value": auth.postgresUser},
        {"name": "PGDATABASE", "value": auth.database},
        _secret_env("PGPASSWORD", release.credentials_secret_name, "postgres-password"),
    ]


def _rabbitmq(release: Release) -> Workload | None:
    rabbitmq = release.values.workloads.get("rabbitmq")
    return rabbitmq if rabbitmq is not None and rabbitmq.enabled else None


def build_backup_env(release: Release) -> list[Manifest]:
    """`mastertrade.backupJobEnv`: the database's, retention, and RabbitMQ's management API."""
    env = build_database_env(release)
    env.append({"name": "RETENTION_DAYS", "value": str(release.values.backup.retentionDays)})
    rabbitmq = _rabbitmq(release)
    if rabbitmq is None:
        return env
    port = next((p.port for p in rabbitmq.ports if p.name == "management"), 0)
    url = f"http://{release.host_of('rabbitmq')}:{port}"
    return [
        *env,
        {"name": "RABBITMQ_MANAGEMENT_URL", "value": url},
        {"name": "RABBITMQ_USER", "value": release.values.auth.rabbitmqUser},
        _secret_env("RABBITMQ_PASSWORD", release.credentials_secret_name, "rabbitmq-password"),
    ]


def build_backup_pod_spec(
    release: Release, name: str, command: list[str], env: list[Manifest]
) -> Manifest:
    """`mastertrade.backupPodSpec`: PostgreSQL's image and user, the scripts and the volume."""
    values = release.values
    postgres = release.workload("postgres")
    image = postgres.image or values.image
    container: Manifest = {
        "name": name,
        "image": release.image_ref(image),
        "imagePullPolicy": image.pullPolicy or "IfNotPresent",
        "command": command,
        "env": env,
        "resources": values.backup.resources.model_dump(),
        "securityContext": build_container_security_context(),
        "volumeMounts": [
            {"name": "scripts", "mountPath": "/scripts", "readOnly": True},
            {"name": "backups", "mountPath": BACKUP_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "serviceAccountName": release.service_account_name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        **build_image_pull_secrets(release),
        "securityContext": build_pod_security_context(release, postgres),
        "containers": [container],
        "volumes": [
            {"name": "scripts", "configMap": {"name": f"{release.fullname}-backup-scripts"}},
            {
                "name": "backups",
                "persistentVolumeClaim": {"claimName": f"{release.fullname}-backups"},
            },
            {"name": "tmp", "emptyDir": {}},
        ],
    }


def build_backups_pvc(release: Release) -> Manifest:
    """`<fullname>-backups`: where the dumps and exports are written."""
    persistence = release.values.backup.persistence
    spec: Manifest = {"accessModes": ["ReadWriteOnce"]}
    storage_class = persistence.storageClass or release.values.global_.storageClass
    if storage_class:
        spec["storageClassName"] = storage_class
    spec["resources"] = {"requests": {"storage": persistence.size}}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": release.metadata(f"{release.fullname}-backups", _labels(release, BACKUP)),
        "spec": spec,
    }


def build_scripts_config_map(release: Release) -> Manifest:
    """`<fullname>-backup-scripts`: files/backup/*.sh as the chart ships them (no templating)."""
    files = release.chart.files
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": release.metadata(
            f"{release.fullname}-backup-scripts", _labels(release, BACKUP)
        ),
        "data": {script: files[f"backup/{script}"] for script in SCRIPTS},
    }


def build_backup_cronjob(release: Release) -> Manifest:
    """The daily backup: `sh /scripts/backup.sh`, one run at a time."""
    backup = release.values.backup
    labels = _labels(release, BACKUP)
    pod_labels = {**labels, uses_label(release.workload("postgres").name): "true"}
    rabbitmq = _rabbitmq(release)
    if rabbitmq is not None:
        pod_labels[uses_label(rabbitmq.name)] = "true"
    command = ["sh", "/scripts/backup.sh"]
    pod_spec = build_backup_pod_spec(release, BACKUP, command, build_backup_env(release))
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": release.metadata(backup_cronjob_name(release), labels),
        "spec": {
            "schedule": backup.schedule,
            "timeZone": backup.timeZone,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "backoffLimit": 2,
                    "template": {
                        "metadata": {"labels": pod_labels},
                        "spec": {"restartPolicy": "OnFailure", **pod_spec},
                    },
                },
            },
        },
    }


def build_restore_job(release: Release) -> list[Manifest]:
    """`<fullname>-restore`, when `backup.restoreFrom` names a dump: `restore.sh <dump>`, once."""
    dump = release.values.backup.restoreFrom
    if not dump:
        return []
    labels = _labels(release, RESTORE)
    pod_labels = {**labels, uses_label(release.workload("postgres").name): "true"}
    command = ["sh", "/scripts/restore.sh", dump]
    pod_spec = build_backup_pod_spec(release, RESTORE, command, build_database_env(release))
    job: Manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": release.metadata(f"{release.fullname}-{RESTORE}", labels),
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {"restartPolicy": "Never", **pod_spec},
            },
        },
    }
    return [job]


def build_backup_objects(release: Release) -> list[Manifest]:
    """The backups volume, scripts, CronJob and (when asked for) the restore Job."""
    if not backups_enabled(release.values):
        return []
    return [
        build_backups_pvc(release),
        build_scripts_config_map(release),
        build_backup_cronjob(release),
        *build_restore_job(release),
    ]

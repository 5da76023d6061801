"""The backup CronJob, its volume and scripts, and the restore Job (docs/backup-restore.md)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import kubernetes_validate
import pytest

from mastertrade_model import load_default_values
from tests.chart.test_render import KUBERNETES_VERSION
from tests.helm import CHART, Manifest, RenderError, by_kind_and_name, of_kind, render

CATALOG = load_default_values().workloads
PREFIX = "mastertrade-"
SCRIPTS = CHART / "files" / "backup"
DUMP = "mastertrade_20260101T020000Z.dump"


def cronjob_of(manifests: list[Manifest]) -> Manifest:
    (cronjob,) = of_kind(manifests, "CronJob")
    return cronjob


def pod_of(cronjob: Manifest) -> dict[str, Any]:
    template: dict[str, Any] = cronjob["spec"]["jobTemplate"]["spec"]["template"]
    return template


def env_of(pod: dict[str, Any]) -> dict[str, Any]:
    return {entry["name"]: entry for entry in pod["spec"]["containers"][0]["env"]}


def test_the_seeds_daily_backup_runs_at_two_utc_one_at_a_time(
    default_render: list[Manifest],
) -> None:
    cronjob = cronjob_of(default_render)
    assert cronjob["metadata"]["name"] == PREFIX + "backup"
    spec = cronjob["spec"]
    assert (spec["schedule"], spec["timeZone"]) == ("0 2 * * *", "Etc/UTC")
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1


def test_the_cronjob_runs_the_backup_script_in_postgres_image_as_its_user(
    default_render: list[Manifest],
) -> None:
    pod = pod_of(cronjob_of(default_render))
    (container,) = pod["spec"]["containers"]
    postgres = CATALOG["postgres"]
    assert postgres.image is not None
    assert (
        container["image"]
        == f"docker.io/postgres:{postgres.image.tag}"
        == ("docker.io/postgres:15-alpine")
    )
    assert container["command"] == ["sh", "/scripts/backup.sh"]
    assert pod["spec"]["securityContext"]["runAsUser"] == 70
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    assert volumes[mounts["/tmp"]]["emptyDir"] == {}
    assert volumes[mounts["/backups"]]["persistentVolumeClaim"] == {"claimName": PREFIX + "backups"}
    assert volumes[mounts["/scripts"]]["configMap"] == {"name": PREFIX + "backup-scripts"}
    env = env_of(pod)
    assert {name: env[name]["value"] for name in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE")} == {
        "PGHOST": PREFIX + "postgres",
        "PGPORT": "5432",
        "PGUSER": "mastertrade",
        "PGDATABASE": "mastertrade",
    }
    assert env["BACKUP_DIR"]["value"] == "/backups"
    assert env["RETENTION_DAYS"]["value"] == "7"
    assert env["RABBITMQ_MANAGEMENT_URL"]["value"] == f"http://{PREFIX}rabbitmq:15672"


def test_the_scripts_configmap_holds_the_files_as_they_are(default_render: list[Manifest]) -> None:
    configmap = by_kind_and_name(default_render)[("ConfigMap", PREFIX + "backup-scripts")]
    assert configmap["data"] == {
        "backup.sh": (SCRIPTS / "backup.sh").read_text(),
        "restore.sh": (SCRIPTS / "restore.sh").read_text(),
    }


def test_the_backups_volume_is_kept_on_uninstall(default_render: list[Manifest]) -> None:
    pvc = by_kind_and_name(default_render)[("PersistentVolumeClaim", PREFIX + "backups")]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert "storageClassName" not in pvc["spec"]
    dropped = render(values={"persistence": {"keepOnUninstall": False}})
    pvc = by_kind_and_name(dropped)[("PersistentVolumeClaim", PREFIX + "backups")]
    assert "annotations" not in pvc["metadata"]


def test_the_backups_volume_takes_its_storage_class_else_the_global_one() -> None:
    def storage_class(values: dict[str, Any]) -> str:
        manifests = render(values=values)
        pvc = by_kind_and_name(manifests)[("PersistentVolumeClaim", PREFIX + "backups")]
        return str(pvc["spec"]["storageClassName"])

    assert storage_class({"global": {"storageClass": "standard"}}) == "standard"
    both = {
        "global": {"storageClass": "standard"},
        "backup": {"persistence": {"storageClass": "slow"}},
    }
    assert storage_class(both) == "slow"


@pytest.mark.parametrize("target", ["postgres", "rabbitmq"])
def test_network_policies_admit_the_backup_pods(
    default_render: list[Manifest], target: str
) -> None:
    labels = pod_of(cronjob_of(default_render))["metadata"]["labels"]
    workload = CATALOG[target]
    policy = by_kind_and_name(default_render)[("NetworkPolicy", PREFIX + workload.name)]
    ports = {
        port["port"]
        for rule in policy["spec"]["ingress"]
        if "from" in rule
        and any(
            source["podSelector"]["matchLabels"].items() <= labels.items()
            for source in rule["from"]
        )
        for port in rule["ports"]
    }
    needed = {"postgres": "postgresql", "rabbitmq": "management"}[target]
    assert needed in ports


def test_no_password_is_written_into_the_cronjob() -> None:
    cronjob = cronjob_of(render())
    env = env_of(pod_of(cronjob))
    for name in ("PGPASSWORD", "RABBITMQ_PASSWORD"):
        assert "value" not in env[name]
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == PREFIX + "credentials"


def test_backups_disabled_render_nothing_of_them() -> None:
    manifests = render(values={"backup": {"enabled": False}})
    names = {m["metadata"]["name"] for m in manifests}
    assert of_kind(manifests, "CronJob") == []
    assert not {PREFIX + "backups", PREFIX + "backup-scripts", PREFIX + "restore"} & names


def test_without_rabbitmq_the_backup_skips_its_export() -> None:
    disabled = {"rabbitmq"}
    while more := {k for k, w in CATALOG.items() if disabled & set(w.dependsOn)} - disabled:
        disabled |= more
    values = {
        "workloads": {key: {"enabled": False} for key in disabled},
        "migrations": {"enabled": False},
    }
    pod = pod_of(cronjob_of(render(values=values)))
    assert "RABBITMQ_MANAGEMENT_URL" not in env_of(pod)
    assert "mastertrade.io/uses-rabbitmq" not in pod["metadata"]["labels"]


def test_a_long_release_name_gives_a_cronjob_name_kubernetes_accepts() -> None:
    release = "a-release-name-that-is-long-for-kubernetes-objects-01"
    name = cronjob_of(render(release=release))["metadata"]["name"]
    assert len(name) <= 52 and name.endswith("-backup")


def test_restore_from_runs_the_restore_script_after_install_and_upgrade() -> None:
    manifests = render(values={"backup": {"restoreFrom": DUMP}})
    job = by_kind_and_name(manifests)[("Job", PREFIX + "restore")]
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
    migrate = by_kind_and_name(manifests)[("Job", PREFIX + "migrate")]
    assert int(annotations["helm.sh/hook-weight"]) > int(
        migrate["metadata"]["annotations"]["helm.sh/hook-weight"]
    ), "on install the schema Job runs first"
    pod = job["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["sh", "/scripts/restore.sh", DUMP]
    assert pod["metadata"]["labels"]["mastertrade.io/uses-postgres"] == "true"
    assert env_of(pod)["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "postgres-password"
    kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
    assert not [m for m in render() if m["metadata"]["name"] == PREFIX + "restore"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(
            {"backup": {"enabled": False, "restoreFrom": DUMP}},
            "backup.restoreFrom needs backup.enabled=true",
            id="restore-without-backups",
        ),
        pytest.param(
            {"backup": {"restoreFrom": "../etc/passwd"}},
            "/backup/restoreFrom",
            id="restore-path",
        ),
        pytest.param({"backup": {"retentionDays": 0}}, "/backup/retentionDays", id="retention"),
        pytest.param({"backup": {"schedule": "daily"}}, "/backup/schedule", id="schedule"),
    ],
)
def test_bad_backup_values_are_refused(values: dict[str, Any], expected: str) -> None:
    with pytest.raises(RenderError) as refused:
        render(values=values)
    assert expected in str(refused.value)


def test_the_scripts_are_posix_sh_and_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck is not None, "shellcheck not found: install Debian's shellcheck package"
    scripts = sorted(SCRIPTS.glob("*.sh"))
    assert [p.name for p in scripts] == ["backup.sh", "restore.sh"]
    for script in scripts:
        text = script.read_text()
        assert text.startswith("#!/bin/sh\n") and "\nset -eu\n" in text, script.name
    done = subprocess.run(
        [shellcheck, "--shell=sh", "--severity=style", *map(str, scripts)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr

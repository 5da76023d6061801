"""The pod template of a workload (`_pod.tpl`): image, ports, environment, probes, volumes.

Also the pieces the migration Job shares with it: pod and container security contexts and the
image pull secrets.
"""

from __future__ import annotations

from mastertrade_operator.model.values import HealthCheck, Port, Workload
from mastertrade_operator.render.context import Manifest, Release, uses_label
from mastertrade_operator.render.env import build_config_hash, build_env_data, build_secret_env


def build_pod_security_context(release: Release, workload: Workload | None) -> Manifest:
    """`mastertrade.podSecurityContext`: the workload's user, else MasterTrade's image's."""
    own = workload.securityContext if workload is not None else None
    context = own or release.values.image.securityContext
    return {
        "runAsNonRoot": True,
        "runAsUser": context.runAsUser,
        "runAsGroup": context.runAsGroup,
        "fsGroup": context.fsGroup,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def build_container_security_context() -> Manifest:
    """`mastertrade.containerSecurityContext`: the restricted profile."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def build_image_pull_secrets(release: Release) -> Manifest:
    """`imagePullSecrets` of every pod, when `global.imagePullSecrets` names any."""
    names = release.values.global_.imagePullSecrets
    return {"imagePullSecrets": [{"name": name} for name in names]} if names else {}


def build_probe_handler(check: HealthCheck, ports: list[Port], path: str | None = None) -> Manifest:
    """The seed's exec check, or an HTTP GET on the first port."""
    if check.exec_:
        return {"exec": {"command": list(check.exec_)}}
    assert check.httpGet is not None  # the model requires exec or httpGet
    return {"httpGet": {"path": path or check.httpGet.path, "port": ports[0].name}}


def build_probes(workload: Workload) -> Manifest:
    """Startup (covering the start period), readiness and liveness probes."""
    check = workload.healthCheck
    timing = {
        "periodSeconds": check.interval,
        "timeoutSeconds": check.timeout,
        "failureThreshold": check.retries,
    }
    handler = build_probe_handler(check, workload.ports)
    liveness = build_probe_handler(check, workload.ports, check.livenessPath)
    probes: Manifest = {}
    if check.startPeriod > 0:
        probes["startupProbe"] = {
            **handler,
            "periodSeconds": 10,
            "timeoutSeconds": check.timeout,
            "failureThreshold": (check.startPeriod + 9) // 10,
        }
    probes["readinessProbe"] = {**handler, **timing}
    probes["livenessProbe"] = {**liveness, **timing}
    return probes


def _persistent(workload: Workload) -> bool:
    return workload.persistence is not None and workload.persistence.enabled


def _writable_paths(release: Release, workload: Workload) -> list[str]:
    return workload.writablePaths or release.values.image.writablePaths


def build_volume_mounts(release: Release, workload: Workload) -> list[Manifest]:
    """Data volume, config files (one subPath each) and writable scratch directories."""
    mounts: list[Manifest] = []
    if _persistent(workload) and workload.persistence is not None:
        mounts.append({"name": "data", "mountPath": workload.persistence.mountPath})
    mounts += [
        {"name": "files", "mountPath": item.mountPath, "subPath": item.file, "readOnly": True}
        for item in workload.configFiles
    ]
    paths = _writable_paths(release, workload)
    mounts += [{"name": f"scratch-{i}", "mountPath": path} for i, path in enumerate(paths)]
    return mounts


def build_volumes(release: Release, workload: Workload) -> list[Manifest]:
    """The pod's volumes (a StatefulSet's data volume comes from its claim template)."""
    name = release.workload_name(workload)
    volumes: list[Manifest] = []
    if _persistent(workload) and workload.kind == "Deployment":
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": f"{name}-data"}})
    if workload.configFiles:
        volumes.append({"name": "files", "configMap": {"name": f"{name}-files"}})
    paths = _writable_paths(release, workload)
    volumes += [{"name": f"scratch-{i}", "emptyDir": {}} for i in range(len(paths))]
    return volumes


def build_container(release: Release, workload: Workload) -> Manifest:
    """The workload's one container."""
    name = release.workload_name(workload)
    image = release.workload_image(workload)
    container: Manifest = {
        "name": workload.name,
        "image": release.image_ref(image),
        "imagePullPolicy": image.pullPolicy or "IfNotPresent",
    }
    if workload.command:
        container["command"] = list(workload.command)
    if workload.args:
        container["args"] = list(workload.args)
    elif workload.image is None:
        first = workload.ports[0]
        container["args"] = [
            "serve",
            workload.name,
            "--port",
            str(first.containerPort or first.port),
        ]
    container["ports"] = [
        {"name": port.name, "containerPort": port.containerPort or port.port, "protocol": "TCP"}
        for port in workload.ports
    ]
    if build_env_data(release, workload):
        container["envFrom"] = [{"configMapRef": {"name": f"{name}-env"}}]
    secret_env = build_secret_env(release, workload)
    if secret_env:
        container["env"] = secret_env
    container["resources"] = workload.resources.model_dump()
    container.update(build_probes(workload))
    container["securityContext"] = build_container_security_context()
    if mounts := build_volume_mounts(release, workload):
        container["volumeMounts"] = mounts
    return container


def build_pod_labels(release: Release, workload: Workload) -> dict[str, str]:
    """Workload labels plus a `uses-<name>` label per dependency (for network policies)."""
    labels = release.workload_labels(workload.name, workload.component)
    for key in workload.dependsOn:
        labels[uses_label(release.workload(key).name)] = "true"
    return labels


def build_pod_template(release: Release, key: str, workload: Workload) -> Manifest:
    """`mastertrade.podTemplate`."""
    annotations = {"checksum/config": build_config_hash(release, key, workload)}
    annotations.update(workload.podAnnotations)
    spec: Manifest = {
        "serviceAccountName": release.service_account_name,
        "automountServiceAccountToken": False,
        **_grace_period(release, workload),
        # Service links would inject variables such as RABBITMQ_PORT that the images misread
        "enableServiceLinks": False,
        **build_image_pull_secrets(release),
        "securityContext": build_pod_security_context(release, workload),
        "containers": [build_container(release, workload)],
    }
    if volumes := build_volumes(release, workload):
        spec["volumes"] = volumes
    scheduling = {
        "nodeSelector": workload.nodeSelector,
        "tolerations": workload.tolerations,
        "affinity": workload.affinity,
    }
    spec.update({field: value for field, value in scheduling.items() if value})
    metadata = {"labels": build_pod_labels(release, workload), "annotations": annotations}
    return {"metadata": metadata, "spec": spec}


def _grace_period(release: Release, workload: Workload) -> Manifest:
    """MasterTrade's services drain requests and messages on SIGTERM; others keep the default."""
    if workload.image is not None:
        return {}
    return {"terminationGracePeriodSeconds": release.values.image.terminationGracePeriodSeconds}

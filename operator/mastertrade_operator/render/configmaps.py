"""Per workload: its settings as environment (`-env`) and its config files (`-files`)."""

from __future__ import annotations

from mastertrade_operator.model.values import Workload
from mastertrade_operator.render.context import Manifest, Release
from mastertrade_operator.render.env import build_env_data, build_files_data


def _config_map(
    release: Release, workload: Workload, suffix: str, data: dict[str, str]
) -> Manifest:
    labels = release.workload_labels(workload.name, workload.component)
    name = f"{release.workload_name(workload)}-{suffix}"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": release.metadata(name, labels),
        "data": data,
    }


def build_config_maps(release: Release, key: str, workload: Workload) -> list[Manifest]:
    """The workload's `-env` ConfigMap (if it has settings) and `-files` (if it has files)."""
    config_maps: list[Manifest] = []
    env = build_env_data(release, workload)
    if env:
        config_maps.append(_config_map(release, workload, "env", env))
    if workload.configFiles:
        files = build_files_data(release, key, workload)
        config_maps.append(_config_map(release, workload, "files", files))
    return config_maps


def build_all_config_maps(release: Release) -> list[Manifest]:
    return [
        cm for key, w in release.enabled_workloads() for cm in build_config_maps(release, key, w)
    ]

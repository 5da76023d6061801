"""What a workload's container reads: its environment and config files, and their checksum.

`build_env_data` and `build_files_data` are the contents of the workload's two ConfigMaps;
`build_secret_env` is the part of the environment that comes from Secrets (or is assembled from
them); `build_config_hash` is the pod annotation that rolls a workload when what it reads changes.
"""

from __future__ import annotations

from typing import Any

from mastertrade_operator.model.values import Connection, Workload
from mastertrade_operator.render.context import Manifest, Release
from mastertrade_operator.render.files import build_config_file
from mastertrade_operator.render.gotext import env_string, sha256sum, to_json, to_yaml


def build_env_data(release: Release, workload: Workload) -> dict[str, str]:
    """`mastertrade.envData`: settings groups, auth fields, service URLs, then `env`."""
    values = release.values
    data: dict[str, str] = {}
    for group in workload.settings:
        settings: dict[str, Any] = getattr(values.settings, group).model_dump()
        data.update({name: env_string(value) for name, value in settings.items()})
    auth = values.auth.model_dump()
    data.update({name: str(auth[field]) for name, field in workload.authEnv.items()})
    for name, target in workload.serviceUrls.items():
        port = release.workload(target).ports[0].port
        data[name] = f"http://{release.host_of(target)}:{port}"
    data.update({name: env_string(value) for name, value in workload.env.items()})
    return data


def build_files_data(release: Release, key: str, workload: Workload) -> dict[str, str]:
    """`mastertrade.filesData`: each config file's text by file name."""
    return {item.file: build_config_file(release, key, item.file) for item in workload.configFiles}


def build_config_hash(release: Release, key: str, workload: Workload) -> str:
    """`mastertrade.configHash`: sha256 of `toJson (list envDataYaml filesDataYaml)`."""
    env_yaml = to_yaml(build_env_data(release, workload))
    files_yaml = to_yaml(build_files_data(release, key, workload))
    return sha256sum(to_json([env_yaml, files_yaml]))


def _secret_ref(name: str, secret: str, key: str, *, optional: bool = False) -> Manifest:
    ref: Manifest = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def _connection_env(release: Release, connections: list[Connection]) -> list[Manifest]:
    """The seed's DATABASE_URL, RABBITMQ_URL and REDIS_URL, passwords expanded from Secrets."""
    auth = release.values.auth
    secret = release.credentials_secret_name
    env: list[Manifest] = []
    if Connection.DATABASE in connections:
        host = release.host_of("postgres")
        env.append(_secret_ref("POSTGRES_PASSWORD", secret, "postgres-password"))
        url = f"postgresql://{auth.postgresUser}:$(POSTGRES_PASSWORD)@{host}:5432/{auth.database}"
        env.append({"name": "DATABASE_URL", "value": url})
    if Connection.RABBITMQ in connections:
        host = release.host_of("rabbitmq")
        vhost = auth.rabbitmqVhost.removeprefix("/")
        env.append(_secret_ref("RABBITMQ_PASSWORD", secret, "rabbitmq-password"))
        url = f"amqp://{auth.rabbitmqUser}:$(RABBITMQ_PASSWORD)@{host}:5672/{vhost}"
        env.append({"name": "RABBITMQ_URL", "value": url})
    if Connection.REDIS in connections:
        url = f"redis://{release.host_of('redis')}:6379/0"
        env.append({"name": "REDIS_URL", "value": url})
    return env


def build_secret_env(release: Release, workload: Workload) -> list[Manifest]:
    """`mastertrade.secretEnv`: credentials, connection URLs, API keys, then `extraEnv`."""
    secret = release.credentials_secret_name
    env = [
        _secret_ref(name, secret, workload.secretEnv[name]) for name in sorted(workload.secretEnv)
    ]
    env += _connection_env(release, workload.connections)
    api_secret = release.values.apiKeys.existingSecret
    if api_secret:
        env += [_secret_ref(key, api_secret, key, optional=True) for key in workload.apiKeys]
    return env + [dict(item) for item in workload.extraEnv]

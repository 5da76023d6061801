"""The typed shape of MasterTrade's deployment values.

One model serves the Helm chart (it generates `values.schema.json`), the operator (a
`MasterTradeDeployment` spec has the same shape, so a values file is a spec) and the services
(their ports, dependencies and health paths). The data itself, the workload catalog and its
defaults, lives in `charts/mastertrade/values.yaml`; this module says what a valid value looks
like. The services' settings are defined in `settings.py`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mastertrade_model.settings import Settings

CPU_PATTERN = r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$"
MEMORY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
ENV_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]*$"
URL_SAFE_PASSWORD_PATTERN = r"^[A-Za-z0-9]*$"

EnvName = Annotated[str, Field(pattern=ENV_NAME_PATTERN)]
Seconds = Annotated[int, Field(ge=1, le=3600)]


class Strict(BaseModel):
    """A part of the values where an unknown key is a mistake, not an extension."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Component(StrEnum):
    INFRASTRUCTURE = "infrastructure"
    CORE = "core"
    MONITORING = "monitoring"


class WorkloadKind(StrEnum):
    DEPLOYMENT = "Deployment"
    STATEFUL_SET = "StatefulSet"


class Dependency(StrEnum):
    """Infrastructure a MasterTrade service connects to, each given to it as a seed URL.

    The name is also the service's key under `checks` in its /health JSON and its metric label.
    """

    DATABASE = "database"
    RABBITMQ = "rabbitmq"
    REDIS = "redis"


class Role(StrEnum):
    """What one workload provides to the others; they find it by this, whatever its key."""

    DATABASE = "database"
    RABBITMQ = "rabbitmq"
    REDIS = "redis"
    METRICS = "metrics"


class Image(Strict):
    registry: str = Field(default="", description="Registry host; empty means Docker Hub")
    repository: str = Field(min_length=1, description="Repository, e.g. postgres")
    tag: str = Field(default="", description="Tag; the chart's appVersion when empty")
    digest: str = Field(
        default="", pattern=r"^(sha256:[a-f0-9]{64})?$", description="Pin by digest instead"
    )
    pullPolicy: Literal["Always", "IfNotPresent", "Never", ""] = Field(
        default="", description="Empty means IfNotPresent"
    )


class PodSecurity(Strict):
    runAsUser: int = Field(ge=1, description="Non-root user the image runs as")
    runAsGroup: int = Field(ge=0)
    fsGroup: int = Field(ge=0, description="Group that owns mounted volumes")


class MastertradeImage(Image):
    securityContext: PodSecurity
    writablePaths: list[str] = Field(description="emptyDirs beside the read-only root")
    preStopSleepSeconds: int = Field(
        default=5, ge=0, le=300, description="Seconds a deleted Pod serves on before SIGTERM"
    )
    terminationGracePeriodSeconds: int = Field(ge=1, le=3600)

    @model_validator(mode="after")
    def _grace_outlasts_the_sleep(self) -> MastertradeImage:
        if self.terminationGracePeriodSeconds <= self.preStopSleepSeconds:
            raise ValueError(
                "image.terminationGracePeriodSeconds must exceed image.preStopSleepSeconds: "
                "the grace period counts from deletion, the sleep included"
            )
        return self


class Port(Strict):
    name: str = Field(pattern=DNS_LABEL_PATTERN, max_length=15)
    port: int = Field(ge=1, le=65535, description="Service port (the seed's host port)")
    containerPort: int | None = Field(
        default=None, ge=1, le=65535, description="Container port when it differs from port"
    )


class Quantities(Strict):
    cpu: str = Field(pattern=CPU_PATTERN, description="CPU cores, e.g. 2 or 500m")
    memory: str = Field(pattern=MEMORY_PATTERN, description="Memory, e.g. 4Gi (binary units)")


class Resources(Strict):
    limits: Quantities
    requests: Quantities


class HttpCheck(Strict):
    path: str = Field(pattern=r"^/", description="Path on the workload's first port")


class HealthCheck(Strict):
    """The seed's Compose health check, in seconds; rendered as Kubernetes probes."""

    exec_: list[str] | None = Field(default=None, alias="exec", min_length=1)
    httpGet: HttpCheck | None = None
    livenessPath: str | None = Field(
        default=None, pattern=r"^/", description="Dependency-free endpoint for the liveness probe"
    )
    interval: Seconds = Field(description="Compose interval: probe periodSeconds")
    timeout: Seconds = Field(description="Compose timeout: probe timeoutSeconds")
    retries: int = Field(ge=1, le=100, description="Compose retries: probe failureThreshold")
    startPeriod: int = Field(ge=0, le=3600, description="Compose start_period: startup probe")

    @model_validator(mode="after")
    def _one_kind_of_check(self) -> HealthCheck:
        if (self.exec_ is None) == (self.httpGet is None):
            raise ValueError("a healthCheck needs exactly one of `exec` or `httpGet`")
        return self


class Persistence(Strict):
    enabled: bool
    size: str = Field(pattern=MEMORY_PATTERN, description="Volume size, e.g. 50Gi")
    mountPath: str = Field(pattern=r"^/")
    storageClass: str = Field(default="", description="Empty uses global.storageClass")


class ServiceExposure(Strict):
    """How the workload's Service is reached: in the cluster only, or on every node's port."""

    type: Literal["ClusterIP", "NodePort"]
    nodePorts: dict[str, Annotated[int, Field(ge=30000, le=32767)]] = Field(
        default_factory=dict, description="Port name to node port (NodePort only)"
    )


class ConfigFile(Strict):
    file: str = Field(description="File under the chart's files/<workload>/ folder")
    mountPath: str = Field(pattern=r"^/", description="Where the seed bind-mounts it")
    verbatim: bool = Field(
        default=False,
        description="Mounted as it is, not rendered by the chart: Prometheus rules and Grafana "
        "dashboards write {{ }} templates of their own",
    )


class GenerationJob(Strict):
    """An Indexed Job of strategy-service's image, started at GENERATION_TIME by a CronJob,
    whose pods compute shards of the day's generation beside the service's pods."""

    enabled: bool = Field(default=False, description="Render the CronJob")
    shards: int = Field(
        default=5,
        ge=1,
        le=10_000,
        description="Completions: one pod per shard index (JOB_COMPLETION_INDEX); about "
        "DAILY_GENERATION_COUNT / STRATEGY_SHARD_SIZE",
    )
    parallelism: int = Field(default=2, ge=1, le=1000, description="Shard pods at once")


class Workload(Strict):
    """One entry of the workload catalog: one container of the seed.

    Optional fields default to empty, because the chart sees only values.yaml: a default that
    is not empty must be written there, not here.
    """

    name: str = Field(pattern=DNS_LABEL_PATTERN, max_length=40, description="Kubernetes name")
    component: Component
    kind: WorkloadKind
    provides: Role | None = Field(
        default=None,
        description="The infrastructure this workload is to the others (connection URLs, "
        "backups, network policies and scrapes follow it)",
    )
    enabled: bool
    replicas: int = Field(ge=0, le=100)
    image: Image | None = Field(default=None, description="Empty runs MasterTrade's own image")
    command: list[str] | None = None
    args: list[str] | None = None
    ports: list[Port] = Field(min_length=1)
    resources: Resources
    healthCheck: HealthCheck
    persistence: Persistence | None = None
    env: dict[EnvName, str | int | float | bool] = Field(default_factory=dict)
    authEnv: dict[EnvName, str] = Field(
        default_factory=dict, description="Variable name to a non-secret field of `auth`"
    )
    secretEnv: dict[EnvName, str] = Field(
        default_factory=dict, description="Variable name to a key of the credentials Secret"
    )
    connections: list[Dependency] = Field(default_factory=list)
    settings: list[str] = Field(default_factory=list, description="Groups of `settings` read")
    apiKeys: list[EnvName] = Field(default_factory=list, description="Keys of apiKeys' Secret")
    serviceUrls: dict[EnvName, str] = Field(
        default_factory=dict, description="Variable name to the workload whose URL it holds"
    )
    service: ServiceExposure | None = Field(default=None, description="Empty is ClusterIP")
    configFiles: list[ConfigFile] = Field(default_factory=list)
    remoteCheck: list[str] | None = Field(
        default=None,
        description="`helm test` command for exec checks, run in the workload's image with "
        "SERVICE_HOST and SERVICE_PORT set",
    )
    securityContext: PodSecurity | None = Field(
        default=None, description="Empty takes image.securityContext"
    )
    writablePaths: list[str] | None = Field(
        default=None, description="emptyDirs beside a read-only root; empty takes image's"
    )
    metrics: bool = Field(default=False, description="Prometheus scrapes /metrics")
    exposed: bool = Field(default=False, description="An entry point reachable from anywhere")
    dependsOn: list[str] = Field(default_factory=list, description="The seed's depends_on")
    nodeSelector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    affinity: dict[str, Any] = Field(default_factory=dict)
    podAnnotations: dict[str, str] = Field(default_factory=dict)
    extraEnv: list[dict[str, Any]] = Field(default_factory=list, description="Extra env entries")
    generationJob: GenerationJob | None = Field(
        default=None, description="strategy-service only: shards of the daily generation as a Job"
    )

    @model_validator(mode="after")
    def _node_ports_name_ports(self) -> Workload:
        if self.service is None or not self.service.nodePorts:
            return self
        if self.service.type != "NodePort":
            raise ValueError("service.nodePorts needs service.type NodePort")
        unknown = sorted(set(self.service.nodePorts) - {port.name for port in self.ports})
        if unknown:
            raise ValueError(f"service.nodePorts names no port of the workload: {unknown}")
        return self


class Global(Strict):
    imageRegistry: str = ""
    imagePullSecrets: list[str] = Field(default_factory=list)
    storageClass: str = ""


class Auth(Strict):
    existingSecret: str = ""
    database: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    postgresUser: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    rabbitmqUser: str = Field(min_length=1)
    rabbitmqVhost: str = Field(min_length=1)
    grafanaAdminUser: str = Field(min_length=1)


HOST_PATTERN = r"^([A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?)?$"


class ManagedService(Strict):
    """A PostgreSQL, RabbitMQ or Redis outside the release, replacing the in-cluster one."""

    host: str = Field(default="", pattern=HOST_PATTERN, description="Empty runs it in-cluster")
    port: int = Field(ge=1, le=65535)
    tls: bool = False


class ManagedRabbitmq(ManagedService):
    managementUrl: str = Field(
        default="", pattern=r"^(https?://\S+)?$", description="For the backup's export"
    )


class ManagedRedis(ManagedService):
    passwordKey: str = Field(
        default="", pattern=r"^[-._a-zA-Z0-9]*$", description="Key of auth.existingSecret"
    )


class External(Strict):
    """Managed infrastructure: a host here replaces the workload that provides it."""

    database: ManagedService
    rabbitmq: ManagedRabbitmq
    redis: ManagedRedis

    def replaces(self, role: Role | None) -> bool:
        """Whether a managed service stands in for the workload providing `role`."""
        managed = {Role.DATABASE: self.database, Role.RABBITMQ: self.rabbitmq,
                   Role.REDIS: self.redis}  # fmt: skip
        return role in managed and bool(managed[role].host)


class ApiKeys(Strict):
    existingSecret: str = ""


class PersistencePolicy(Strict):
    keepOnUninstall: bool


class PrometheusSettings(Strict):
    scrapeInterval: str = Field(pattern=r"^[0-9]+(ms|s|m|h)$")
    operatorResources: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="Render PodMonitors and a PrometheusRule for the Prometheus Operator: `auto` "
        "when the cluster serves monitoring.coreos.com/v1",
    )
    operatorLabels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels on the PodMonitors and PrometheusRule, so that a Prometheus "
        "Operator's podMonitorSelector and ruleSelector pick them",
    )


class GrafanaDashboards(Strict):
    sidecar: bool = Field(
        default=False,
        description="Also ship the dashboards in a ConfigMap a kube-prometheus-stack Grafana's "
        "sidecar loads",
    )
    sidecarLabel: str = Field(default="grafana_dashboard", min_length=1)
    sidecarLabelValue: str = Field(default="1")
    sidecarFolder: str = Field(default="MasterTrade", description="Grafana folder (annotation)")


class GrafanaSettings(Strict):
    dashboards: GrafanaDashboards = Field(default_factory=GrafanaDashboards)


class Migrations(Strict):
    enabled: bool
    backoffLimit: int = Field(ge=0, le=100)
    resources: Resources


class BackupVolume(Strict):
    size: str = Field(pattern=MEMORY_PATTERN, description="Volume size, e.g. 20Gi")
    storageClass: str = Field(default="", description="Empty uses global.storageClass")


class Backup(Strict):
    """The backup CronJob (pg_dump and RabbitMQ definitions) and the restore hook Job."""

    enabled: bool
    schedule: str = Field(
        pattern=r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$",
        description="Cron schedule, e.g. 0 2 * * *",
    )
    timeZone: str = Field(min_length=1, description="IANA time zone of the schedule")
    retentionDays: int = Field(ge=1, le=3650, description="Days a backup is kept")
    persistence: BackupVolume
    resources: Resources
    restoreFrom: str = Field(
        default="",
        pattern=r"^([A-Za-z0-9][A-Za-z0-9._-]*\.dump)?$",
        description="Dump file in the backups volume to restore; empty restores nothing",
    )

    @model_validator(mode="after")
    def _restore_needs_the_volume(self) -> Backup:
        if self.restoreFrom and not self.enabled:
            raise ValueError(
                "backup.restoreFrom needs backup.enabled=true: the dumps are in the backups "
                "volume that the backup section creates"
            )
        return self


class NetworkPolicySettings(Strict):
    enabled: bool
    metricsFrom: list[dict[str, Any]] = Field(
        default_factory=list,
        description="NetworkPolicy peers (namespaceSelector, podSelector) also allowed to scrape "
        "every metrics port, e.g. a kube-prometheus-stack Prometheus",
    )


class OperatorInstall(Strict):
    """The chart's operator mode; not part of a MasterTradeDeployment's spec."""

    enabled: bool
    upgradeCRD: bool = Field(description="Apply the chart's CRD on helm upgrade (a hook Job)")
    image: Image
    resources: Resources


class TestImage(Strict):
    image: Image


class Values(Strict):
    """Everything `helm install -f values.yaml` (or a MasterTradeDeployment spec) may say."""

    nameOverride: str = ""
    fullnameOverride: str = ""
    global_: Global = Field(alias="global")
    image: MastertradeImage
    auth: Auth
    external: External
    apiKeys: ApiKeys
    settings: Settings
    persistence: PersistencePolicy
    prometheus: PrometheusSettings
    grafana: GrafanaSettings = Field(default_factory=GrafanaSettings)
    migrations: Migrations
    backup: Backup
    networkPolicy: NetworkPolicySettings
    operator: OperatorInstall | None = Field(
        default=None, description="The chart's operator mode (the CRD's spec has no such field)"
    )
    tests: TestImage
    crds: dict[str, Any] = Field(
        default_factory=dict,
        description="Values Helm gives the CRD subchart (it reads none); not a spec field",
    )
    workloads: dict[str, Workload]

    def runs(self, key: str) -> bool:
        """Whether the workload runs in the cluster: enabled and not replaced by a managed one."""
        workload = self.workloads[key]
        return workload.enabled and not self.external.replaces(workload.provides)

    def provider_key(self, role: Role) -> str:
        """Key of the workload that provides `role`."""
        return next(key for key, w in self.workloads.items() if w.provides == role)

    @model_validator(mode="after")
    def _one_provider_per_role(self) -> Values:
        for role in Role:
            found = [key for key, w in self.workloads.items() if w.provides == role]
            if len(found) != 1:
                raise ValueError(
                    f"exactly one workload must have provides: {role}, found {len(found)} "
                    f"({', '.join(found)}): set it on the one the others should use"
                )
        return self

    @model_validator(mode="after")
    def _references_resolve(self) -> Values:
        known = set(self.workloads)
        groups = set(Settings.model_fields)
        for key, workload in self.workloads.items():
            for target in [*workload.dependsOn, *workload.serviceUrls.values()]:
                if target not in known:
                    raise ValueError(f"workloads.{key} refers to unknown workload {target!r}")
            for group in workload.settings:
                if group not in groups:
                    raise ValueError(f"workloads.{key}.settings: unknown group {group!r}")
        return self

"""The only module that talks to the Kubernetes API (besides kopf itself).

Login goes through `kubernetes_asyncio`'s kept config loaders, so a kubeconfig works as it does
for kubectl (embedded `*-data`, paths relative to the kubeconfig's folder, exec credential
plugins with their expiry, tokens) and so does in-cluster login (the token file re-read). kopf
logs in with the same `Connection` (`connection_info`). `Kube` is a small async client on
`kubernetes_asyncio`'s `ApiClient`: server-side apply under the operator's field manager (also
as a dry run), reads and lists of children, merge patches (status, owner references) and
deletes; a 401 logs in again once.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import kopf
from kubernetes_asyncio import config as kconfig
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException

FIELD_MANAGER = "mastertrade-operator"
USER_AGENT = "mastertrade-operator"
REQUEST_TIMEOUT = 30.0
"""Seconds a request may take before the reconcile fails (and is retried)."""
IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Connection:
    """A logged-in client configuration, the context's namespace and when the login expires."""

    configuration: Configuration
    namespace: str | None = None
    expiration: datetime.datetime | None = None


Login = Callable[[], Awaitable[Connection]]


def _plugin_expiry(loader: Any) -> datetime.datetime | None:
    expiry: datetime.datetime | None = getattr(loader, "exec_plugin_expiry", None)
    return expiry


async def _exec_refresh(loader: Any, configuration: Configuration) -> None:
    """Before a request: run the exec plugin again once its credential expired (as kubectl)."""
    if _plugin_expiry(loader) is not None:
        await loader.load_from_exec_plugin()
        configuration.api_key["BearerToken"] = loader.token


async def login_with_kubeconfig(path: str | None = None, context: str | None = None) -> Connection:
    """Log in as kubectl would with `path` (default: $KUBECONFIG, else ~/.kube/config)."""
    configuration = Configuration()
    location = path or os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
    loader = await kconfig.load_kube_config(
        config_file=location,
        context=context,
        client_configuration=configuration,
        persist_config=False,
    )
    if _plugin_expiry(loader) is not None:
        configuration.refresh_api_key_hook = lambda conf: _exec_refresh(loader, conf)
    namespace = (loader.current_context or {}).get("context", {}).get("namespace")
    return Connection(configuration, namespace, _plugin_expiry(loader))


def login_in_cluster() -> Connection:
    """The pod's ServiceAccount (its token re-read as the kubelet rotates it)."""
    configuration = Configuration()
    kconfig.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    namespace = IN_CLUSTER_NAMESPACE.read_text().strip() if IN_CLUSTER_NAMESPACE.is_file() else None
    return Connection(configuration, namespace)


def default_login(kubeconfig: str | None = None) -> Login:
    """In a pod its ServiceAccount, elsewhere the kubeconfig; a `kopf.LoginError` if neither."""

    async def login() -> Connection:
        if kubeconfig is None:
            with contextlib.suppress(kconfig.ConfigException):
                return login_in_cluster()
        try:
            return await login_with_kubeconfig(kubeconfig)
        except (kconfig.ConfigException, OSError) as error:
            raise kopf.LoginError(
                f"no service account and no usable kubeconfig to log in with: {error}"
            ) from error

    return login


def plain_login(server: str, namespace: str | None = None) -> Login:
    """An unauthenticated login to `server` (an API emulator on loopback, in tests)."""

    async def login() -> Connection:
        return Connection(Configuration(host=server), namespace)

    return login


async def connection_info(connection: Connection) -> kopf.ConnectionInfo:
    """The same login as kopf's `ConnectionInfo` (kopf logs in again when it expires)."""
    conf = connection.configuration
    header = await conf.get_api_key_with_prefix("BearerToken")
    scheme, _, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=str(conf.host),
        ca_path=conf.ssl_ca_cert,
        insecure=not conf.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=conf.cert_file,
        private_key_path=conf.key_file,
        default_namespace=connection.namespace,
        expiration=connection.expiration,
    )


@dataclass(frozen=True)
class Resource:
    """A Kubernetes resource: where its objects live in the API."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None, name: str | None = None) -> str:
        """The collection (or, with `name`, the object); `namespace` None: cluster-scoped."""
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        scope = f"/namespaces/{namespace}" if namespace is not None else ""
        path = f"{root}{scope}/{self.plural}"
        return f"{path}/{name}" if name else path


OWNED: dict[str, Resource] = {
    resource.kind: resource
    for resource in (
        Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
        Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"),
        Resource("", "v1", "serviceaccounts", "ServiceAccount"),
        Resource("rbac.authorization.k8s.io", "v1", "roles", "Role"),
        Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
        Resource("", "v1", "secrets", "Secret"),
        Resource("", "v1", "configmaps", "ConfigMap"),
        Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
        Resource("", "v1", "services", "Service"),
        Resource("apps", "v1", "deployments", "Deployment"),
        Resource("apps", "v1", "statefulsets", "StatefulSet"),
        Resource("batch", "v1", "jobs", "Job"),
        Resource("batch", "v1", "cronjobs", "CronJob"),
    )
}
"""Every kind the operator renders, applies and watches, by kind."""

CRDS = Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition"
)
"""Cluster-scoped: the operator's own CRD, applied by `mastertrade-operator crd --apply`."""

AUTOSCALERS = Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")
"""Read only: a workload an HPA scales has its replicas left to the HPA."""


class KubeError(Exception):
    """The API server refused a request; `status` is the HTTP status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def _kube_error(error: ApiException) -> KubeError:
    try:
        payload = json.loads(error.body or "{}")
    except ValueError:
        payload = {}
    payload = payload if isinstance(payload, dict) else {}
    reason = str(payload.get("reason") or error.reason)
    return KubeError(int(error.status or 0), reason, str(payload.get("message") or error.body))


def _with_kind(items: list[Manifest], resource: Resource) -> list[Manifest]:
    """A LIST's items carry no apiVersion/kind on a real server: give them theirs."""
    return [{"apiVersion": resource.api_version, "kind": resource.kind, **item} for item in items]


class Kube:
    """An API client bound to one login; open it inside the operator's event loop."""

    def __init__(self, login: Login) -> None:
        self._login = login
        self._connection: Connection | None = None
        self._client: ApiClient | None = None
        self._users = 0
        self.requests = 0
        """Requests sent so far (for metrics and the benchmark)."""

    async def connect(self) -> Connection:
        """Log in (again); the old pool is closed so the new credentials are used."""
        self._connection = await self._login()
        await self._close_client()
        return self._connection

    async def connection_info(self) -> kopf.ConnectionInfo:
        """Log in (again) and return the login as kopf takes it."""
        return await connection_info(await self.connect())

    async def _close_client(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    @contextlib.asynccontextmanager
    async def opened(self) -> AsyncIterator[Kube]:
        """Hold the connection pool open for a piece of work; the last one out closes it
        (so no session outlives the event loop, whatever kopf still runs at shutdown)."""
        self._users += 1
        try:
            yield self
        finally:
            self._users -= 1
            if self._users == 0:
                await self._close_client()

    async def _api(self) -> ApiClient:
        if self._users == 0:
            raise RuntimeError("Kube used outside `async with kube.opened()`")
        connection = self._connection or await self.connect()
        if self._client is None:
            self._client = ApiClient(connection.configuration)
            self._client.user_agent = USER_AGENT
        return self._client

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> Any:
        for attempt in (1, 2):
            client = await self._api()
            self.requests += 1
            try:
                return await client.call_api(
                    path,
                    method,
                    query_params=list((params or {}).items()),
                    header_params={"Content-Type": content_type, "Accept": "application/json"},
                    body=body,
                    auth_settings=["BearerToken"],
                    response_types_map={200: "object", 201: "object", 202: "object"},
                    _return_http_data_only=True,
                    _request_timeout=REQUEST_TIMEOUT,
                )
            except ApiException as error:
                if error.status == 401 and attempt == 1:
                    await self.connect()
                    continue
                raise _kube_error(error) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def apply(self, manifest: Manifest, *, dry_run: bool = False) -> Manifest:
        """Server-side apply of one object (created when missing, fields owned by us); with
        `dry_run`, what the object would become, changing nothing."""
        resource = OWNED[manifest["kind"]]
        meta = manifest["metadata"]
        path = resource.path(meta["namespace"], meta["name"])
        params = {"fieldManager": FIELD_MANAGER, "force": "true"}
        if dry_run:
            params["dryRun"] = "All"
        applied: Manifest = await self._request(
            "PATCH", path, body=manifest, content_type="application/apply-patch+yaml", params=params
        )
        return applied

    async def create(self, manifest: Manifest) -> Manifest:
        """Create an object that must not exist yet (409 Conflict when it does)."""
        meta = manifest["metadata"]
        path = OWNED[manifest["kind"]].path(meta["namespace"])
        created: Manifest = await self._request("POST", path, body=manifest)
        return created

    async def apply_cluster_object(self, resource: Resource, manifest: Manifest) -> Manifest:
        """Server-side apply of a cluster-scoped object (the CRD) under our field manager."""
        path = resource.path(None, manifest["metadata"]["name"])
        params = {"fieldManager": FIELD_MANAGER, "force": "true"}
        applied: Manifest = await self._request(
            "PATCH", path, body=manifest, content_type="application/apply-patch+yaml", params=params
        )
        return applied

    async def fetch(self, resource: Resource, namespace: str, name: str) -> Manifest | None:
        """One object, or None when there is none."""
        try:
            found: Manifest = await self._request("GET", resource.path(namespace, name))
        except KubeError as error:
            if error.status == 404:
                return None
            raise
        return found

    async def list(self, resource: Resource, namespace: str, selector: str = "") -> list[Manifest]:
        """Objects of a kind in a namespace whose labels match `selector`, each with its
        apiVersion and kind."""
        params = {"labelSelector": selector} if selector else {}
        listed = await self._request("GET", resource.path(namespace), params=params)
        return _with_kind(listed.get("items") or [], resource)

    async def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: Manifest,
        *,
        subresource: str = "",
    ) -> Manifest:
        """A JSON merge patch of an object (or of its `status` subresource)."""
        path = resource.path(namespace, name) + (f"/{subresource}" if subresource else "")
        patched: Manifest = await self._request(
            "PATCH", path, body=patch, content_type="application/merge-patch+json"
        )
        return patched

    async def delete(
        self, resource: Resource, namespace: str, name: str, *, propagation: str = "Background"
    ) -> None:
        """Delete an object; what it owns goes in the background (or, with "Orphan", stays);
        gone already is fine."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        try:
            await self._request("DELETE", resource.path(namespace, name), body=body)
        except KubeError as error:
            if error.status != 404:
                raise


CONNECTION_ERRORS = (KubeError, aiohttp.ClientError, TimeoutError, OSError)
"""What a request can fail with: refused by the API server, or the server not reached."""

MASTERTRADE = Resource(
    "mastertrade.io", "v1alpha1", "mastertradedeployments", "MasterTradeDeployment"
)
"""The custom resource the operator reconciles."""

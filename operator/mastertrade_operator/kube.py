"""The only module that talks to the Kubernetes API (besides kopf itself).

`Kube` is a small async client over aiohttp (what kopf already depends on): server-side apply
under the operator's field manager, reads and lists of children, merge patches (status, owner
references) and deletes. It connects with the `kopf.ConnectionInfo` that kopf's login gives, so
the operator and kopf use the same credentials; a 401 logs in again once.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import kopf

FIELD_MANAGER = "mastertrade-operator"
USER_AGENT = "mastertrade-operator"
REQUEST_TIMEOUT = 30.0
"""Seconds a request may take before the reconcile fails (and is retried)."""

Manifest = dict[str, Any]
Login = Callable[[], kopf.ConnectionInfo]


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

    def path(self, namespace: str, name: str | None = None) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        path = f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{path}/{name}" if name else path


OWNED: dict[str, Resource] = {
    resource.kind: resource
    for resource in (
        Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
        Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget"),
        Resource("", "v1", "serviceaccounts", "ServiceAccount"),
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


class KubeError(Exception):
    """The API server refused a request; `status` is the HTTP status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def build_ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    """TLS settings of a connection, from the CA and client certificate kopf's login found."""
    if not info.server.startswith("https"):
        return False
    if info.insecure:
        return False
    cadata = info.ca_data.decode() if isinstance(info.ca_data, bytes) else info.ca_data
    context = ssl.create_default_context(cafile=info.ca_path or None, cadata=cadata)
    if info.certificate_path and info.private_key_path:
        context.load_cert_chain(info.certificate_path, info.private_key_path)
    return context


def build_headers(info: kopf.ConnectionInfo) -> dict[str, str]:
    if info.token:
        return {"Authorization": f"{info.scheme or 'Bearer'} {info.token}"}
    return {}


class Kube:
    """An API client bound to one connection; open it inside the operator's event loop."""

    def __init__(self, login: Login) -> None:
        self._login = login
        self._info: kopf.ConnectionInfo | None = None
        self._session: aiohttp.ClientSession | None = None
        self._users = 0
        self.requests = 0
        """Requests sent so far (for metrics and the benchmark)."""

    def connect(self) -> kopf.ConnectionInfo:
        """Log in (again) and return the connection, which kopf uses too."""
        self._info = self._login()
        return self._info

    @contextlib.asynccontextmanager
    async def opened(self) -> AsyncIterator[Kube]:
        """Hold the connection pool open for a piece of work; the last one out closes it
        (so no session outlives the event loop, whatever kopf still runs at shutdown)."""
        self._users += 1
        try:
            yield self
        finally:
            self._users -= 1
            if self._users == 0 and self._session is not None:
                session, self._session = self._session, None
                await session.close()

    def _client(self) -> tuple[aiohttp.ClientSession, kopf.ConnectionInfo]:
        if self._users == 0:
            raise RuntimeError("Kube used outside `async with kube.opened()`")
        info = self._info or self.connect()
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=build_ssl_context(info))
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self._session, info

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
            session, info = self._client()
            headers = {
                **build_headers(info),
                "Content-Type": content_type,
                "User-Agent": USER_AGENT,
            }
            data = None if body is None else json.dumps(body)
            self.requests += 1
            async with session.request(
                method, info.server.rstrip("/") + path, data=data, headers=headers, params=params
            ) as response:
                if response.status == 401 and attempt == 1:
                    self.connect()
                    continue
                payload = await response.json(content_type=None)
                if response.status >= 400:
                    payload = payload if isinstance(payload, dict) else {}
                    reason = str(payload.get("reason", response.reason))
                    raise KubeError(response.status, reason, str(payload.get("message", "")))
                return payload
        raise AssertionError("unreachable")  # pragma: no cover

    async def apply(self, manifest: Manifest) -> Manifest:
        """Server-side apply of one object (created when missing, fields owned by us)."""
        resource = OWNED[manifest["kind"]]
        meta = manifest["metadata"]
        path = resource.path(meta["namespace"], meta["name"])
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

    async def list(self, resource: Resource, namespace: str, selector: str) -> list[Manifest]:
        """Objects of a kind in a namespace whose labels match `selector`."""
        listed = await self._request(
            "GET", resource.path(namespace), params={"labelSelector": selector}
        )
        items: list[Manifest] = listed.get("items") or []
        return items

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

    async def delete(self, resource: Resource, namespace: str, name: str) -> None:
        """Delete an object and, in the background, what it owns; gone already is fine."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            await self._request("DELETE", resource.path(namespace, name), body=body)
        except KubeError as error:
            if error.status != 404:
                raise


MASTERTRADE = Resource(
    "mastertrade.io", "v1alpha1", "mastertradedeployments", "MasterTradeDeployment"
)
"""The custom resource the operator reconciles."""

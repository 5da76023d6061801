"""What the chart's hook Jobs run, each with a ServiceAccount allowed only that:

- `crd --apply` (pre-upgrade): server-side apply the CRD this version carries, since Helm never
  upgrades a chart's crds/;
- `uninstall` (pre-delete): delete the release's MasterTradeDeployment and wait until it is gone,
  while the operator still runs its finalizer (PVCs and credentials kept), so that nothing is
  left hanging on a finalizer once Helm removes the operator;
- `credentials` (chart mode): make the credentials Secret once, inside the cluster.

Each prints what it did in plain words and returns a process exit code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TextIO

import yaml

from mastertrade_operator.crd import render_crd_yaml
from mastertrade_operator.kube import CONNECTION_ERRORS, CRDS, MASTERTRADE, Kube, KubeError, Login
from mastertrade_operator.reconcile.credentials import PASSWORD_KEYS, ensure_credentials

POLL_SECONDS = 1.0


def apply_crd(login: Login, out: TextIO) -> int:
    """Apply the CRD; 0 when the API server took it."""
    crd = yaml.safe_load(render_crd_yaml())

    async def work() -> None:
        kube = Kube(login)
        async with kube.opened():
            await kube.apply_cluster_object(CRDS, crd)

    return _run(work(), out, f"applied the CustomResourceDefinition {crd['metadata']['name']}")


def finish_resource(login: Login, namespace: str, name: str, timeout: float, out: TextIO) -> bool:
    """Delete the resource and wait until the API server no longer has it."""

    async def work() -> bool:
        kube = Kube(login)
        async with kube.opened():
            await kube.delete(MASTERTRADE, namespace, name)
            deadline = time.monotonic() + timeout
            while await kube.fetch(MASTERTRADE, namespace, name) is not None:
                if time.monotonic() > deadline:
                    return False
                await asyncio.sleep(POLL_SECONDS)
        return True

    try:
        gone = asyncio.run(work())
    except CONNECTION_ERRORS as error:
        out.write(f"mastertrade-operator: could not finish {namespace}/{name}: {error}\n")
        return False
    if not gone:
        out.write(
            f"mastertrade-operator: {namespace}/{name} still exists after {timeout:.0f}s: is the "
            "operator running? (`kubectl describe mtd` shows its finalizer and events)\n"
        )
        return False
    out.write(f"mastertrade-operator: {namespace}/{name} deleted and finished (PVCs kept)\n")
    return True


def ensure_secret(login: Login, namespace: str, name: str, instance: str, out: TextIO) -> int:
    """Create the credentials Secret when missing; add missing keys; change none."""

    async def work() -> None:
        kube = Kube(login)
        async with kube.opened():
            await ensure_credentials(kube, namespace, name, instance)

    keys = ", ".join(PASSWORD_KEYS)
    return _run(work(), out, f"the Secret {namespace}/{name} holds {keys}")


def _run(work: Coroutine[Any, Any, None], out: TextIO, success: str) -> int:
    try:
        asyncio.run(work)
    except KubeError as error:
        out.write(f"mastertrade-operator: the API server refused: {error}\n")
        return 1
    except CONNECTION_ERRORS as error:
        out.write(f"mastertrade-operator: the API server was not reached: {error}\n")
        return 1
    out.write(f"mastertrade-operator: {success}\n")
    return 0

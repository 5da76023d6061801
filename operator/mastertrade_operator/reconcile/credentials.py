"""The credentials Secret: made once inside the cluster, never replaced.

The chart never renders a password (with `helm template`, as Argo CD and Flux render, a generated
one would change on every render). The operator, and in chart mode the chart's hook Job
(`mastertrade-operator credentials`), make the Secret instead: created with generated passwords
when it is missing, a missing key added, an existing key never changed. It is owned by nobody, so
it outlives the installation with the volumes whose data it opens.
"""

from __future__ import annotations

import base64
import logging
import secrets
import string
from collections.abc import Mapping
from typing import Any

from mastertrade_operator.kube import OWNED, Kube, KubeError
from mastertrade_operator.resource import MasterTradeDeployment

PASSWORD_KEYS = ("postgres-password", "rabbitmq-password", "grafana-admin-password")
PASSWORD_ALPHABET = string.ascii_letters + string.digits
PASSWORD_LENGTH = 32
logger = logging.getLogger(__name__)


def credentials_secret_name(resource: MasterTradeDeployment) -> str:
    """The operator's credentials Secret, made once and never owned (it outlives the resource
    with the volumes whose data it opens)."""
    return f"{resource.name}-credentials"


def new_password() -> str:
    """Letters and digits only: the passwords are put in connection URLs."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def build_missing(data: Mapping[str, str], remembered: Mapping[str, str]) -> dict[str, str]:
    """The keys `data` lacks, as base64 Secret data: remembered ones, else new passwords."""
    return {
        key: remembered.get(key) or _b64(new_password()) for key in PASSWORD_KEYS if key not in data
    }


def build_secret(
    name: str, namespace: str, instance: str, data: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/instance": instance,
                "app.kubernetes.io/part-of": "mastertrade",
                "app.kubernetes.io/component": "credentials",
            },
        },
        "type": "Opaque",
        "data": dict(data),
    }


async def ensure_credentials(
    kube: Kube,
    namespace: str,
    name: str,
    instance: str,
    remembered: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The Secret's data after making sure it holds every password (created when missing;
    a missing key added; no existing key changed). `remembered` is data seen before, for a
    Secret deleted since."""
    found = await kube.fetch(OWNED["Secret"], namespace, name)
    data: dict[str, str] = dict((found or {}).get("data") or {})
    missing = build_missing(data, remembered or {})
    if found is None:
        try:
            await kube.create(build_secret(name, namespace, instance, missing))
        except KubeError as error:
            if error.status != 409:  # made meanwhile by another: theirs is kept
                raise
            return await ensure_credentials(kube, namespace, name, instance, remembered)
        logger.info("created the credentials Secret %s/%s", namespace, name)
        return missing
    if missing:
        await kube.patch(OWNED["Secret"], namespace, name, {"data": missing})
        logger.info("added %s to the credentials Secret %s/%s", sorted(missing), namespace, name)
    return {**data, **missing}

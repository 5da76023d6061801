"""The credentials Secret, unless `auth.existingSecret` names the user's own.

A password given in the values is used; otherwise the one already in the cluster is kept (the
caller passes the existing Secret's data, as the chart's `lookup` does); otherwise a new random
one is generated. Only that last case is not deterministic.
"""

from __future__ import annotations

import base64
import secrets
import string
from collections.abc import Mapping

from mastertrade_operator.render.context import Manifest, Release

PASSWORD_ALPHABET = string.ascii_letters + string.digits
PASSWORD_LENGTH = 32


def new_password() -> str:
    """Like Sprig's `randAlphaNum 32` (letters and digits: it is put in URLs)."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def build_credentials_data(release: Release, existing: Mapping[str, str]) -> dict[str, str]:
    """The Secret's base64 data: given passwords, else the existing ones, else new ones."""
    auth = release.values.auth
    given = {
        "postgres-password": auth.postgresPassword,
        "rabbitmq-password": auth.rabbitmqPassword,
        "grafana-admin-password": auth.grafanaAdminPassword,
    }
    data: dict[str, str] = {}
    for key in sorted(given):
        if given[key]:
            data[key] = _b64(given[key])
        elif key in existing:
            data[key] = existing[key]
        else:
            data[key] = _b64(new_password())
    return data


def build_credentials_secret(
    release: Release, existing: Mapping[str, str] | None = None
) -> list[Manifest]:
    """The Secret (none when the user brings their own); `existing` is its data in the cluster."""
    if release.values.auth.existingSecret:
        return []
    secret: Manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": release.metadata(release.credentials_secret_name, release.labels()),
        "type": "Opaque",
        "data": build_credentials_data(release, existing or {}),
    }
    return [secret]

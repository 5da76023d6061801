"""The one identity of the release's pods; none of them talks to the Kubernetes API."""

from __future__ import annotations

from mastertrade_operator.render.context import Manifest, Release


def build_service_account(release: Release) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": release.metadata(release.service_account_name, release.labels()),
        "automountServiceAccountToken": False,
    }

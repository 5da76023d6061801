"""The objects of one MasterTrade installation, rendered by the chart the operator ships with.

`Renderer.render(resource, credentials)` runs `helm template` of the bundled chart with the
resource's spec as values (the pattern of the Operator SDK's Helm-based operators, Argo CD and
Flux), then applies the steps only an operator needs (`objects.py`). Passwords are passed in as
values, because `lookup` is empty in template mode: they are generated once by the operator and
kept. A render is cached by everything it depends on (values, release, namespace, chart version),
so a resync does not run helm.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import string
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mastertrade_model.catalog import chart_dir
from mastertrade_operator.render.helm import Helm, RenderError
from mastertrade_operator.render.objects import (
    MANAGED_BY,
    PASSWORD_KEYS,
    Manifest,
    as_operator_objects,
    credentials_secret,
)
from mastertrade_operator.resource import MasterTradeDeployment

__all__ = [
    "MANAGED_BY",
    "PASSWORD_KEYS",
    "Manifest",
    "RenderError",
    "Renderer",
    "credentials_secret",
    "new_credentials",
]

PASSWORD_ALPHABET = string.ascii_letters + string.digits
PASSWORD_LENGTH = 32
CACHE_SIZE = 64


def new_password() -> str:
    """Letters and digits only: the passwords are put in connection URLs."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def new_credentials() -> dict[str, str]:
    """A full set of new passwords, as the credentials Secret's base64 data."""
    return {key: _b64(new_password()) for key in PASSWORD_KEYS}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _decoded(value: str) -> str:
    return base64.b64decode(value, validate=True).decode()


def build_helm_values(
    resource: MasterTradeDeployment, credentials: Mapping[str, str]
) -> dict[str, Any]:
    """The spec's values, with each password the spec does not give taken from `credentials`
    (base64, as in the Secret's data)."""
    values: dict[str, Any] = json.loads(json.dumps(resource.spec_values))
    if resource.values.auth.existingSecret:
        return values
    auth = values.setdefault("auth", {})
    for key, field_name in PASSWORD_KEYS.items():
        if not getattr(resource.values.auth, field_name) and key in credentials:
            auth[field_name] = _decoded(credentials[key])
    return values


def parse_stream(stream: str) -> list[Any]:
    """The documents of helm's output (libyaml's parser: several times faster than PyYAML's)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return list(yaml.load_all(stream, Loader=loader))


@dataclass
class Renderer:
    """Renders installations with one helm binary and one chart, remembering recent renders."""

    helm: Helm
    chart: Path = field(default_factory=chart_dir)
    _cache: OrderedDict[str, list[Manifest]] = field(default_factory=OrderedDict)
    renders: int = 0
    """How many times helm ran (a cached render does not count)."""

    @property
    def chart_version(self) -> str:
        meta = yaml.safe_load((self.chart / "Chart.yaml").read_text())
        return str(meta["version"])

    def _key(self, resource: MasterTradeDeployment, values: dict[str, Any]) -> str:
        text = json.dumps(
            [resource.name, resource.namespace, str(self.chart), self.helm.version, values],
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()

    async def render(
        self, resource: MasterTradeDeployment, credentials: Mapping[str, str]
    ) -> list[Manifest]:
        """The objects the operator applies for `resource` (raises RenderError)."""
        values = build_helm_values(resource, credentials)
        key = self._key(resource, values)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        stream = await self.helm.template_async(
            resource.name, resource.namespace, self.chart, values
        )
        self.renders += 1
        objects = as_operator_objects(parse_stream(stream), resource.namespace)
        self._cache[key] = objects
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return objects

    def render_now(
        self, resource: MasterTradeDeployment, credentials: Mapping[str, str]
    ) -> list[Manifest]:
        """The same render without an event loop (for `mastertrade-operator render`)."""
        values = build_helm_values(resource, credentials)
        stream = self.helm.template(resource.name, resource.namespace, self.chart, values)
        return as_operator_objects(parse_stream(stream), resource.namespace)

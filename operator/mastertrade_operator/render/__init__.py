"""The objects of one MasterTrade installation, rendered by the chart the operator ships with.

`Renderer.render(resource, credentials_secret)` runs `helm template` of the bundled chart with
the resource's spec as values (the pattern of the Operator SDK's Helm-based operators, Argo CD and
Flux), then applies the steps only an operator needs (`objects.py`). The chart never renders a
password: the operator makes the credentials Secret itself, once, and names it to the chart as
`auth.existingSecret`. A render is cached by everything it depends on (values, release,
namespace, chart and helm versions), so a resync does not run helm.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mastertrade_model.catalog import chart_dir
from mastertrade_operator.render.helm import Helm, RenderError
from mastertrade_operator.render.objects import MANAGED_BY, Manifest, as_operator_objects
from mastertrade_operator.resource import MasterTradeDeployment

__all__ = ["MANAGED_BY", "Manifest", "RenderError", "Renderer", "build_helm_values"]

CACHE_SIZE = 64


def build_helm_values(
    resource: MasterTradeDeployment, credentials_secret: str | None
) -> dict[str, Any]:
    """The spec's values, naming the operator's credentials Secret when the spec names none."""
    values: dict[str, Any] = json.loads(json.dumps(resource.spec_values))
    if credentials_secret and not resource.values.auth.existingSecret:
        values.setdefault("auth", {})["existingSecret"] = credentials_secret
    # PodMonitors and PrometheusRules are not kinds the operator applies: Helm renders them
    values.setdefault("prometheus", {})["operatorResources"] = "never"
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
        self, resource: MasterTradeDeployment, credentials_secret: str | None = None
    ) -> list[Manifest]:
        """The objects the operator applies for `resource` (raises RenderError)."""
        values = build_helm_values(resource, credentials_secret)
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
        self, resource: MasterTradeDeployment, credentials_secret: str | None = None
    ) -> list[Manifest]:
        """The same render without an event loop (for `mastertrade-operator render`)."""
        values = build_helm_values(resource, credentials_secret)
        stream = self.helm.template(resource.name, resource.namespace, self.chart, values)
        return as_operator_objects(parse_stream(stream), resource.namespace)

"""The MasterTradeDeployment custom resource: its names, and reading one into typed values.

A resource's `spec` has the shape of the chart's values: it is merged over values.yaml and
validated by the typed model here, at the edge; the rules a schema cannot say (`_validate.tpl`)
are the chart's, checked when it renders. `metadata.name` is the release name and
`metadata.namespace` the namespace.
Two fields of `spec` are the operator's own switches and not chart values: `paused` and
`deletePvcsOnDelete` (see `OPERATOR_FIELDS`); they are read here and kept out of the values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from mastertrade_model.catalog import load_values
from mastertrade_model.values import Values

GROUP = "mastertrade.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "MasterTradeDeployment"
PLURAL = "mastertradedeployments"
SINGULAR = "mastertradedeployment"
SHORT_NAMES = ["mtd"]

RELEASE_NAME_MAX = 53
"""Helm's limit on release names, so that object names built from it stay valid."""
RELEASE_NAME_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


OPERATOR_FIELDS = ("paused", "deletePvcsOnDelete")
"""Keys of `spec` that steer the operator; the rest of `spec` is chart values."""


class ResourceError(ValueError):
    """A resource that cannot be rendered; the message names each field to fix."""


@dataclass(frozen=True)
class MasterTradeDeployment:
    """A resource read at the edge: release name, namespace and the merged, typed values."""

    name: str
    namespace: str
    values: Values
    spec_values: dict[str, Any] = field(default_factory=dict)
    """The spec as written, less the operator's switches: the values helm renders with."""
    paused: bool = False
    """`spec.paused`: make no change to the installation."""
    delete_pvcs_on_delete: bool = False
    """`spec.deletePvcsOnDelete`: delete the data volumes with the resource."""


def _field(document: dict[str, Any], path: str, expected: type) -> Any:
    node: Any = document
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if node is not None and not isinstance(node, expected):
        raise ResourceError(f"{path}: expected {expected.__name__}, got {type(node).__name__}")
    return node


def _check_header(document: dict[str, Any]) -> tuple[str, str]:
    api_version = _field(document, "apiVersion", str)
    kind = _field(document, "kind", str)
    if api_version != API_VERSION or kind != KIND:
        raise ResourceError(
            f"apiVersion/kind: expected {API_VERSION} {KIND}, got {api_version} {kind}"
        )
    name = _field(document, "metadata.name", str)
    if not name:
        raise ResourceError("metadata.name: required (it is the release name)")
    if len(name) > RELEASE_NAME_MAX or not RELEASE_NAME_PATTERN.match(name):
        raise ResourceError(
            f"metadata.name: {name!r} must be a DNS label of at most {RELEASE_NAME_MAX} "
            "characters (lower-case letters, digits and '-')"
        )
    namespace = _field(document, "metadata.namespace", str) or "default"
    return name, namespace


def _validation_messages(error: ValidationError) -> list[str]:
    return [
        ".".join(["spec", *(str(part) for part in item["loc"])]) + f": {item['msg']}"
        for item in error.errors()
    ]


def parse_resource(document: Any) -> MasterTradeDeployment:
    """Read a resource (as parsed YAML or JSON) into typed values, or say what is wrong."""
    if not isinstance(document, dict):
        raise ResourceError("expected a MasterTradeDeployment object (a YAML mapping)")
    name, namespace = _check_header(document)
    spec = _field(document, "spec", dict) or {}
    switches = {key: bool(_field(document, f"spec.{key}", bool)) for key in OPERATOR_FIELDS}
    spec_values = {key: value for key, value in spec.items() if key not in OPERATOR_FIELDS}
    try:
        values = load_values(spec_values)
    except ValidationError as error:
        raise ResourceError("\n".join(_validation_messages(error))) from None
    return MasterTradeDeployment(
        name=name,
        namespace=namespace,
        values=values,
        spec_values=spec_values,
        paused=switches["paused"],
        delete_pvcs_on_delete=switches["deletePvcsOnDelete"],
    )

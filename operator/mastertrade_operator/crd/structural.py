"""The values JSON schema turned into a Kubernetes structural schema.

The chart's `values.schema.json` is JSON Schema; a CRD's `openAPIV3Schema` must be a structural
OpenAPI v3 schema, which says some things differently and cannot say others:

- `anyOf: [X, {type: null}]` becomes X with `nullable: true`;
- `exclusiveMinimum: n` becomes `minimum: n` with `exclusiveMinimum: true`;
- `additionalProperties: false` beside `properties` is dropped (the API server prunes or, with
  strict field validation, rejects unknown fields);
- `additionalProperties: true` and a free-form object become `x-kubernetes-preserve-unknown-fields`;
- `patternProperties` and `propertyNames` are not supported: the value schema becomes
  `additionalProperties`. The workload keys (a closed list, bounded by `maxProperties`) become a
  CEL rule on `workloads`. Variable-name keys (`env`, `authEnv`, ...) get no CEL rule: a key's
  length cannot be bounded, so the API server would estimate `k.matches(...)` over an unbounded
  map as too costly and refuse the CRD; the operator's typed model checks those names;
- a value of several scalar types (an `env` value) keeps any value: the operator's typed model
  checks it when it reads the spec;
- `required` and `default` are removed everywhere: a spec is merged over values.yaml's defaults
  by the operator, so it may leave out anything that values.yaml gives, and a default applied by
  the API server would replace the catalog's value (an empty `dependsOn`, say) in that merge.
"""

from __future__ import annotations

import json
from typing import Any

JsonSchema = dict[str, Any]

DROPPED_KEYWORDS = frozenset({"$schema", "title", "required", "default"})


def key_rule(message: str, condition: str) -> JsonSchema:
    """A CEL rule on every key of a map."""
    return {"rule": f"self.all(k, {condition})", "message": message}


def _nullable(node: JsonSchema) -> JsonSchema:
    branches = node["anyOf"]
    rest = {key: value for key, value in node.items() if key != "anyOf"}
    non_null = [branch for branch in branches if branch.get("type") != "null"]
    if len(non_null) == len(branches):
        if all(set(branch) == {"type"} for branch in branches):
            # a scalar of several types: any value, checked by the operator's model
            return {**rest, "x-kubernetes-preserve-unknown-fields": True}
        raise ValueError(f"anyOf without null cannot be made structural: {json.dumps(node)}")
    if len(non_null) != 1:
        raise ValueError(f"anyOf with several non-null branches: {json.dumps(node)}")
    return {**non_null[0], **rest, "nullable": True}


def _pattern_properties(node: JsonSchema) -> JsonSchema:
    (_, value_schema), *others = node.pop("patternProperties").items()
    if others:
        raise ValueError("several patternProperties cannot be made structural")
    node.setdefault("additionalProperties", value_schema)
    return node


def _property_names(node: JsonSchema) -> JsonSchema:
    names = node.pop("propertyNames")["enum"]
    node["maxProperties"] = len(names)
    allowed = ", ".join(names)
    rule = key_rule(f"keys must be one of: {allowed}", f"k in {json.dumps(names)}")
    node.setdefault("x-kubernetes-validations", []).append(rule)
    return node


def _object(node: JsonSchema) -> JsonSchema:
    if "patternProperties" in node:
        node = _pattern_properties(node)
    if "propertyNames" in node:
        node = _property_names(node)
    additional = node.get("additionalProperties")
    if additional is False and "properties" in node:
        del node["additionalProperties"]
    elif additional is True or ("properties" not in node and additional is None):
        node.pop("additionalProperties", None)
        node["x-kubernetes-preserve-unknown-fields"] = True
    return node


def _exclusive_bounds(node: JsonSchema) -> JsonSchema:
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = node.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):
            node[limit] = value
            node[bound] = True
    return node


def structural(node: Any) -> Any:
    """Convert one schema node (and everything below it)."""
    if isinstance(node, list):
        return [structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted: JsonSchema = {
        key: value for key, value in node.items() if key not in DROPPED_KEYWORDS
    }
    if "anyOf" in converted:
        return structural(_nullable(converted))
    if converted.get("type") == "object":
        converted = _object(converted)
    converted = _exclusive_bounds(converted)
    for key in ("properties",):
        if key in converted:
            converted[key] = {name: structural(sub) for name, sub in converted[key].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(converted.get(key), dict):
            converted[key] = structural(converted[key])
    return converted


def build_structural_schema(values_schema: JsonSchema) -> JsonSchema:
    """The spec's schema in a CRD, from the chart's values schema."""
    schema: JsonSchema = structural(values_schema)
    return schema

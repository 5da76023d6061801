"""JSON Schema of the values, generated from the typed model and the catalog.

The same schema is the chart's `values.schema.json` and (in the operator) the body of the CRD's
`openAPIV3Schema`, so it is kept self-contained: every `$ref` is inlined.
"""

from __future__ import annotations

import copy
from typing import Any

from mastertrade_model.settings import Settings
from mastertrade_model.values import Values

JsonSchema = dict[str, Any]


def inline_refs(schema: JsonSchema) -> JsonSchema:
    """Replace every `$ref: #/$defs/X` with the definition itself and drop `$defs`."""
    definitions = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                name = node["$ref"].removeprefix("#/$defs/")
                siblings = {k: v for k, v in node.items() if k != "$ref"}
                return {**resolve(copy.deepcopy(definitions[name])), **resolve(siblings)}
            return {key: resolve(value) for key, value in node.items() if key != "$defs"}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: JsonSchema = resolve(schema)
    return resolved


def tidy(node: Any) -> Any:
    """Drop pydantic's auto-generated titles (they repeat property names) and the settings'
    defaults (values.yaml holds them; a CRD default would write them into every resource), and
    fold docstring line breaks in descriptions into single spaces."""
    if isinstance(node, dict):
        return {
            key: " ".join(value.split()) if key == "description" else tidy(value)
            for key, value in node.items()
            if not (key == "title" and isinstance(value, str)) and key != "default"
        }
    if isinstance(node, list):
        return [tidy(item) for item in node]
    return node


def constrain_to_catalog(schema: JsonSchema, workload_keys: list[str]) -> JsonSchema:
    """Make references between workloads name only workloads of the catalog."""
    workloads = schema["properties"]["workloads"]
    workloads["propertyNames"] = {"enum": workload_keys}
    workload = workloads["additionalProperties"]["properties"]
    workload["dependsOn"]["items"] = {"type": "string", "enum": workload_keys}
    workload["serviceUrls"]["additionalProperties"] = {"type": "string", "enum": workload_keys}
    workload["settings"]["items"] = {"type": "string", "enum": list(Settings.model_fields)}
    return schema


def build_values_schema(workload_keys: list[str]) -> JsonSchema:
    """The chart's values.schema.json."""
    schema = inline_refs(Values.model_json_schema(by_alias=True, mode="validation"))
    schema = constrain_to_catalog(tidy(schema), workload_keys)
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "MasterTrade chart values",
        **{key: value for key, value in schema.items() if key != "title"},
    }

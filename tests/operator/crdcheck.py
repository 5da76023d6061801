"""Checks of a CRD that need no API server: structural-schema rules, schema validation of
resources the way the API server does it (strict field validation), and its CEL rules, evaluated
with cel-python."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import celpy
import jsonschema
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError

Schema = dict[str, Any]

# Keywords a structural schema may not use (or that Kubernetes does not support at all)
FORBIDDEN = frozenset(
    {"$schema", "$ref", "definitions", "patternProperties", "propertyNames", "title", "const"}
)
UNTYPED_OK = ("x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string")


def version_schema(crd: dict[str, Any]) -> Schema:
    schema: Schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def children(schema: Schema, path: str) -> Iterator[tuple[str, Schema]]:
    for name, sub in (schema.get("properties") or {}).items():
        yield f"{path}.{name}", sub
    if isinstance(schema.get("additionalProperties"), dict):
        yield f"{path}[*]", schema["additionalProperties"]
    if isinstance(schema.get("items"), dict):
        yield f"{path}[]", schema["items"]


def structural_problems(schema: Schema, path: str = "") -> list[str]:
    """Where the schema breaks Kubernetes' structural-schema rules."""
    problems = [f"{path}: {key} is not allowed" for key in FORBIDDEN & set(schema)]
    if "type" not in schema and not any(schema.get(flag) for flag in UNTYPED_OK):
        problems.append(f"{path}: no type")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{path}: properties and additionalProperties together")
    for junctor in ("anyOf", "allOf", "oneOf", "not"):
        if junctor in schema:
            problems.append(f"{path}: {junctor} (not used by this CRD)")
    for sub_path, sub in children(schema, path):
        problems += structural_problems(sub, sub_path)
    return problems


def keyword_paths(schema: Schema, keyword: str, path: str = "") -> list[str]:
    found = [path] if keyword in schema else []
    for sub_path, sub in children(schema, path):
        found += keyword_paths(sub, keyword, sub_path)
    return found


def to_json_schema(schema: Any) -> Any:
    """OpenAPI v3 (as Kubernetes reads it) to draft-4 JSON Schema, with unknown fields refused
    as `kubectl apply` (strict field validation) refuses them."""
    if isinstance(schema, list):
        return [to_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: to_json_schema(value) for key, value in schema.items()}
    if converted.pop("nullable", False):
        converted["type"] = [converted["type"], "null"]
    preserve = converted.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in converted and not preserve:
        converted["additionalProperties"] = False
    return converted


def schema_errors(crd: dict[str, Any], resource: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft4Validator(to_json_schema(version_schema(crd)))
    return [
        f"{'.'.join(str(part) for part in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(resource)
    ]


def rules(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Every CEL rule with the path of the node it is on."""
    for rule in schema.get("x-kubernetes-validations") or []:
        yield path, rule
    for sub_path, sub in children(schema, path):
        yield from rules(sub, sub_path)


def _evaluate(rule: str, value: Any) -> bool:
    environment = celpy.Environment()
    program = environment.program(environment.compile(rule))
    result = program.evaluate({"self": json_to_cel(value)})
    return bool(result) if isinstance(result, celpy.celtypes.BoolType) else False


def cel_failures(schema: Schema, value: Any, path: str = "") -> list[str]:
    """Messages of the CEL rules that `value` breaks (as the API server would report them)."""
    failures = [
        f"{path or '<root>'}: {rule['message']}"
        for rule in schema.get("x-kubernetes-validations") or []
        if not _evaluate(rule["rule"], value)
    ]
    if isinstance(value, dict):
        for name, item in value.items():
            sub = (schema.get("properties") or {}).get(name)
            if sub is None and isinstance(schema.get("additionalProperties"), dict):
                sub = schema["additionalProperties"]
            if sub is not None:
                failures += cel_failures(sub, item, f"{path}.{name}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            failures += cel_failures(schema["items"], item, f"{path}[{index}]")
    return failures


def compile_errors(schema: Schema) -> list[str]:
    environment = celpy.Environment()
    errors = []
    for path, rule in rules(schema):
        try:
            environment.compile(rule["rule"])
        except CELParseError as error:
            errors.append(f"{path}: {rule['rule']}: {error}")
    return errors


def dump(data: Any) -> str:
    return json.dumps(data, indent=1)

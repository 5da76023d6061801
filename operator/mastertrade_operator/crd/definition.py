"""The MasterTradeDeployment CustomResourceDefinition, generated from the typed values model.

`spec` is the chart's values schema made structural (see `structural.py`), with CEL rules for
what a schema cannot say; `status` is what the operator reports; printer columns show the phase,
the ready workloads, the trading environment and the age.
"""

from __future__ import annotations

from typing import Any

from mastertrade_model.schema import build_values_schema
from mastertrade_operator.crd.structural import JsonSchema, build_structural_schema
from mastertrade_operator.resource import (
    GROUP,
    KIND,
    PLURAL,
    RELEASE_NAME_MAX,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
)

_LIVE = (
    "has(self.settings) && has(self.settings.trading)"
    " && has(self.settings.trading.TRADING_ENVIRONMENT)"
    " && self.settings.trading.TRADING_ENVIRONMENT == 'live'"
)

SPEC_RULES: list[JsonSchema] = [
    {
        "rule": f"!({_LIVE}) || (has(self.apiKeys) && has(self.apiKeys.existingSecret)"
        " && self.apiKeys.existingSecret != '')",
        "message": "settings.trading.TRADING_ENVIRONMENT=live places real orders and needs "
        "Binance API keys: create a Secret from your .env file and set apiKeys.existingSecret "
        "to its name (or keep TRADING_ENVIRONMENT=paper)",
        "fieldPath": ".apiKeys.existingSecret",
        "reason": "FieldValueRequired",
    },
    {
        "rule": f"!({_LIVE}) || !has(self.settings.risk)"
        " || !has(self.settings.risk.CIRCUIT_BREAKER_ENABLED)"
        " || self.settings.risk.CIRCUIT_BREAKER_ENABLED",
        "message": "settings.trading.TRADING_ENVIRONMENT=live needs "
        "settings.risk.CIRCUIT_BREAKER_ENABLED=true: live trading without the circuit breaker "
        "is refused",
        "fieldPath": ".settings.risk.CIRCUIT_BREAKER_ENABLED",
        "reason": "FieldValueInvalid",
    },
]

ROOT_RULES: list[JsonSchema] = [
    {
        "rule": f"size(self.metadata.name) <= {RELEASE_NAME_MAX}",
        "message": f"metadata.name is the release name: at most {RELEASE_NAME_MAX} characters",
    }
]

CONDITION_SCHEMA: JsonSchema = {
    "type": "object",
    "required": ["type", "status"],
    "properties": {
        "type": {"type": "string", "description": "Ready, Progressing or Degraded"},
        "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
        "reason": {"type": "string", "description": "CamelCase reason of the last transition"},
        "message": {"type": "string", "description": "What happened, for humans"},
        "lastTransitionTime": {"type": "string", "format": "date-time"},
        "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
    },
}

WORKLOAD_STATUS_SCHEMA: JsonSchema = {
    "type": "object",
    "properties": {
        "ready": {"type": "integer", "format": "int32", "minimum": 0},
        "desired": {"type": "integer", "format": "int32", "minimum": 0},
    },
}

STATUS_SCHEMA: JsonSchema = {
    "type": "object",
    "description": "Observed state, written by the operator only",
    "properties": {
        "phase": {
            "type": "string",
            "description": "Where the rollout is: Pending, Infrastructure, Migrating, Restoring, "
            "Services, Monitoring, Ready, Degraded, Paused or Deleting",
        },
        "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
        "conditions": {
            "type": "array",
            "items": CONDITION_SCHEMA,
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
        "workloads": {
            "type": "object",
            "description": "Ready and desired replicas by workload (catalog key)",
            "additionalProperties": WORKLOAD_STATUS_SCHEMA,
        },
        "readyWorkloads": {
            "type": "string",
            "description": "Ready workloads of enabled, e.g. 14/14",
        },
        "tradingEnvironment": {"type": "string", "description": "paper or live, as deployed"},
        "completedJobs": {
            "type": "object",
            "description": "Hash of each Job (schema migration, restore) last seen succeeded, "
            "by name: once it is gone (its TTL, or deleted) it is not run again until it changes",
            "additionalProperties": {"type": "string"},
        },
    },
}

OPERATOR_FIELDS: JsonSchema = {
    "paused": {
        "type": "boolean",
        "description": "Operator switch, not a chart value: true stops every change to the "
        "installation (no applies, no drift correction) until set back to false",
    },
    "deletePvcsOnDelete": {
        "type": "boolean",
        "description": "Operator switch, not a chart value: true deletes the installation's "
        "PersistentVolumeClaims (the data) with the resource; by default they are kept",
    },
}
"""Fields of `spec` that steer the operator and are not part of the chart's values."""

PRINTER_COLUMNS: list[JsonSchema] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Ready", "type": "string", "jsonPath": ".status.readyWorkloads"},
    {"name": "Trading", "type": "string", "jsonPath": ".status.tradingEnvironment"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def build_spec_schema(workload_keys: list[str]) -> JsonSchema:
    """The structural schema of `spec`, with the spec-wide CEL rules."""
    values_schema = build_values_schema(workload_keys)
    spec = build_structural_schema(values_schema)
    spec["description"] = (
        "A MasterTrade installation: the chart's values, merged over values.yaml's defaults "
        "(every field is optional)"
    )
    del spec["properties"]["operator"]  # how the chart installs the operator, not a spec field
    del spec["properties"]["crds"]  # the chart's CRD subchart, which has no values
    spec["properties"].update(OPERATOR_FIELDS)
    spec["x-kubernetes-validations"] = SPEC_RULES
    return spec


def build_version(workload_keys: list[str]) -> dict[str, Any]:
    """The one served and stored version, with its schema, status and printer columns."""
    schema: JsonSchema = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": build_spec_schema(workload_keys),
            "status": STATUS_SCHEMA,
        },
        "x-kubernetes-validations": ROOT_RULES,
    }
    return {
        "name": VERSION,
        "served": True,
        "storage": True,
        "subresources": {"status": {}},
        "additionalPrinterColumns": PRINTER_COLUMNS,
        "schema": {"openAPIV3Schema": schema},
    }


def build_crd(workload_keys: list[str]) -> dict[str, Any]:
    """The CustomResourceDefinition object."""
    names = {
        "kind": KIND,
        "listKind": f"{KIND}List",
        "plural": PLURAL,
        "singular": SINGULAR,
        "shortNames": SHORT_NAMES,
        "categories": ["mastertrade"],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "mastertrade"},
        },
        "spec": {
            "group": GROUP,
            "names": names,
            "scope": "Namespaced",
            "versions": [build_version(workload_keys)],
        },
    }

"""The MasterTradeDeployment CRD: a valid Kubernetes object with a structural schema, that
accepts the samples and the chart's profiles, and rejects bad specs with a message that says
what to fix (schema errors as the API server reports them, CEL rules evaluated by cel-python)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mastertrade_model import load_default_values
from mastertrade_operator.crd import CRD_PATH, build_crd
from mastertrade_operator.resource import API_VERSION, KIND, ResourceError, parse_resource
from tests.helm import CHART, REPO
from tests.operator.crdcheck import (
    cel_failures,
    compile_errors,
    keyword_paths,
    schema_errors,
    structural_problems,
    version_schema,
)

KUBERNETES_VERSION = "1.35.0"
SAMPLES = sorted((REPO / "manifests" / "samples").glob("*.yaml"))
PROFILES = [*sorted((CHART / "ci").glob("*-values.yaml")), CHART / "values-kind.yaml"]


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return loaded


def resource(spec: dict[str, Any], name: str = "mastertrade") -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": "trading"},
        "spec": spec,
    }


def problems(crd: dict[str, Any], document: dict[str, Any]) -> list[str]:
    """Everything the API server would refuse, schema first, then CEL."""
    return schema_errors(crd, document) + cel_failures(version_schema(crd), document)


def test_the_committed_crd_is_the_generated_one(crd: dict[str, Any]) -> None:
    assert crd == build_crd(list(load_default_values().workloads))


def test_crd_is_a_valid_kubernetes_object(crd: dict[str, Any]) -> None:
    kubernetes_validate.validate(crd, KUBERNETES_VERSION, strict=True)


def test_crd_names_and_versions(crd: dict[str, Any]) -> None:
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "mastertradedeployments.mastertrade.io"
    assert (spec["group"], spec["scope"], spec["names"]["kind"]) == (
        "mastertrade.io",
        "Namespaced",
        "MasterTradeDeployment",
    )
    assert spec["names"]["shortNames"] == ["mtd"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [column["name"] for column in version["additionalPrinterColumns"]]
    assert columns == ["Phase", "Ready", "Trading", "Age"]


def test_schema_is_structural(crd: dict[str, Any]) -> None:
    assert structural_problems(version_schema(crd)) == []


def test_every_spec_field_is_optional_and_has_no_server_side_default(crd: dict[str, Any]) -> None:
    spec = version_schema(crd)["properties"]["spec"]
    assert keyword_paths(spec, "required") == []
    assert keyword_paths(spec, "default") == []


def test_every_cel_rule_compiles(crd: dict[str, Any]) -> None:
    assert compile_errors(version_schema(crd)) == []


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_samples_are_accepted(crd: dict[str, Any], path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    assert problems(crd, document) == []
    parse_resource(document)  # and the operator reads it


def as_spec(values: dict[str, Any]) -> dict[str, Any]:
    """A values file is a spec, less `operator` (how the chart installs the operator)."""
    return {key: value for key, value in values.items() if key != "operator"}


@pytest.mark.parametrize("path", PROFILES, ids=lambda path: path.name)
def test_values_files_are_specs(crd: dict[str, Any], path: Path) -> None:
    assert problems(crd, resource(as_spec(yaml.safe_load(path.read_text()) or {}))) == []


def test_the_full_values_file_is_a_spec(crd: dict[str, Any]) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert problems(crd, resource(as_spec(values))) == []


def test_the_operator_block_is_not_part_of_a_spec(crd: dict[str, Any]) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert problems(crd, resource(values)), "spec.operator must be refused"


GOOD_SPECS: dict[str, dict[str, Any]] = {
    "empty": {},
    "live-with-keys": {
        "settings": {"trading": {"TRADING_ENVIRONMENT": "live"}},
        "apiKeys": {"existingSecret": "binance"},
    },
    "live-with-breaker": {
        "settings": {
            "trading": {"TRADING_ENVIRONMENT": "live"},
            "risk": {"CIRCUIT_BREAKER_ENABLED": True},
        },
        "apiKeys": {"existingSecret": "binance"},
    },
    "paper-without-breaker": {"settings": {"risk": {"CIRCUIT_BREAKER_ENABLED": False}}},
    "partial-workload": {"workloads": {"redis": {"replicas": 1, "env": {"TZ": "UTC", "N": 2}}}},
    "nulls": {"workloads": {"grafana": {"persistence": None, "image": None}}},
}

LIVE = {"TRADING_ENVIRONMENT": "live"}
BAD_SPECS: dict[str, tuple[dict[str, Any], str]] = {
    "live-without-keys": ({"settings": {"trading": LIVE}}, "set apiKeys.existingSecret"),
    "live-with-empty-keys": (
        {"settings": {"trading": LIVE}, "apiKeys": {"existingSecret": ""}},
        "set apiKeys.existingSecret",
    ),
    "live-without-breaker": (
        {
            "settings": {"trading": LIVE, "risk": {"CIRCUIT_BREAKER_ENABLED": False}},
            "apiKeys": {"existingSecret": "binance"},
        },
        "needs settings.risk.CIRCUIT_BREAKER_ENABLED=true",
    ),
    "unknown-environment": (
        {"settings": {"trading": {"TRADING_ENVIRONMENT": "testnet"}}},
        "spec.settings.trading.TRADING_ENVIRONMENT: 'testnet' is not one of ['paper', 'live']",
    ),
    "unknown-workload": ({"workloads": {"mystery": {"replicas": 1}}}, "keys must be one of"),
    "too-many-replicas": (
        {"workloads": {"strategyService": {"replicas": 101}}},
        "spec.workloads.strategyService.replicas: 101 is greater than the maximum of 100",
    ),
    "negative-replicas": (
        {"workloads": {"strategyService": {"replicas": -1}}},
        "spec.workloads.strategyService.replicas: -1 is less than the minimum of 0",
    ),
    "unknown-field": (
        {"settings": {"risk": {"MAX_DRAWDOWN": 0.1}}},
        "spec.settings.risk: Additional properties are not allowed ('MAX_DRAWDOWN'",
    ),
    "drawdown-over-100-percent": (
        {"settings": {"risk": {"MAX_PORTFOLIO_DRAWDOWN_PCT": 1.5}}},
        "MAX_PORTFOLIO_DRAWDOWN_PCT: 1.5 is greater than the maximum of 1",
    ),
    "zero-position-size": (
        {"settings": {"risk": {"MAX_POSITION_SIZE_PCT": 0}}},
        "MAX_POSITION_SIZE_PCT: 0 is less than or equal to the minimum of 0",
    ),
    "cpu-not-a-quantity": (
        {"workloads": {"redis": {"resources": {"limits": {"cpu": "two"}}}}},
        "spec.workloads.redis.resources.limits.cpu: 'two' does not match",
    ),
    "depends-on-unknown": (
        {"workloads": {"redis": {"dependsOn": ["nothing"]}}},
        "spec.workloads.redis.dependsOn.0: 'nothing' is not one of",
    ),
    "password-in-spec": (
        {"auth": {"postgresPassword": "chosen"}},
        "postgresPassword",
    ),
}


@pytest.mark.parametrize("spec", GOOD_SPECS.values(), ids=list(GOOD_SPECS))
def test_good_specs_are_accepted(crd: dict[str, Any], spec: dict[str, Any]) -> None:
    assert problems(crd, resource(spec)) == []


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS.values(), ids=list(BAD_SPECS))
def test_bad_specs_are_rejected_saying_what_to_fix(
    crd: dict[str, Any], spec: dict[str, Any], message: str
) -> None:
    found = problems(crd, resource(spec))
    assert any(message in problem for problem in found), found


def test_variable_names_are_checked_by_the_operator_not_the_crd(crd: dict[str, Any]) -> None:
    """A CEL rule on the keys of an unbounded map is too costly for the API server."""
    document = resource({"workloads": {"redis": {"env": {"my-var": "x"}}}})
    assert problems(crd, document) == []
    with pytest.raises(ResourceError, match=r"spec\.workloads\.redis\.env\.my-var"):
        parse_resource(document)


def test_release_name_longer_than_helm_allows_is_rejected(crd: dict[str, Any]) -> None:
    found = problems(crd, resource({}, name="m" * 54))
    assert found == ["<root>: metadata.name is the release name: at most 53 characters"]

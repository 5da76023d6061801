"""Reading a MasterTradeDeployment into typed values, and the chart's rules on them."""

from __future__ import annotations

from typing import Any

import pytest

from mastertrade_operator.model import load_values
from mastertrade_operator.model.resource import (
    API_VERSION,
    KIND,
    ResourceError,
    check_rules,
    parse_resource,
)


def document(spec: Any = None, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "desk", "namespace": "trading", **metadata},
        "spec": spec,
    }


def test_an_empty_spec_is_the_charts_defaults() -> None:
    resource = parse_resource(document())
    assert (resource.name, resource.namespace) == ("desk", "trading")
    assert resource.values == load_values()


def test_the_spec_is_merged_over_the_defaults() -> None:
    spec = {"workloads": {"redis": {"replicas": 2}}}
    resource = parse_resource(document(spec))
    assert resource.values.workloads["redis"].replicas == 2
    assert resource.values.workloads["redis"].persistence is not None  # kept from values.yaml


def test_namespace_defaults_like_kubectl() -> None:
    resource = parse_resource({**document(), "metadata": {"name": "desk"}})
    assert resource.namespace == "default"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"metadata": {}}, "metadata.name: required"),
        ({"metadata": {"name": "Desk_1"}}, "metadata.name: 'Desk_1' must be a DNS label"),
        ({"metadata": {"name": "d" * 54}}, "at most 53 characters"),
        ({"metadata": {"name": 7}}, "metadata.name: expected str, got int"),
        ({"spec": [1]}, "spec: expected dict, got list"),
        ({"spec": {"settings": {"risk": {"MAX_POSITION_SIZE_PCT": 2}}}}, "MAX_POSITION_SIZE_PCT"),
        ({"spec": {"workloads": {"redis": {"dependsOn": ["nowhere"]}}}}, "unknown workload"),
    ],
)
def test_malformed_resources_name_the_field(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(ResourceError, match=message.replace("(", r"\(")):
        parse_resource({**document(), **patch})


def test_live_trading_needs_keys_and_the_circuit_breaker() -> None:
    live = {"settings": {"trading": {"TRADING_ENVIRONMENT": "live"}}}
    assert len(check_rules(load_values(live))) == 1
    unsafe = {
        "settings": {
            "trading": {"TRADING_ENVIRONMENT": "live"},
            "risk": {"CIRCUIT_BREAKER_ENABLED": False},
        }
    }
    assert len(check_rules(load_values(unsafe))) == 2
    assert check_rules(load_values({**live, "apiKeys": {"existingSecret": "keys"}})) == []


def test_a_disabled_dependency_is_refused() -> None:
    values = load_values({"workloads": {"prometheus": {"enabled": False}}})
    assert check_rules(values) == [
        "workloads.grafana depends on workloads.prometheus, which is disabled: "
        "enable workloads.prometheus or disable workloads.grafana"
    ]

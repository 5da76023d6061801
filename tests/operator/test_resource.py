"""Reading a MasterTradeDeployment into typed values (the chart's own rules are tested with the
chart, tests/chart/test_bad_values.py, and the operator's render, tests/operator/test_render.py)."""

from __future__ import annotations

from typing import Any

import pytest

from mastertrade_model import load_values
from mastertrade_operator.resource import (
    API_VERSION,
    KIND,
    ResourceError,
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

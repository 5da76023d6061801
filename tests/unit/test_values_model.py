"""The typed values model: the shipped catalog is valid, and bad catalogs are refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mastertrade_model import load_default_values, load_values
from mastertrade_model.catalog import merge_values


def test_the_shipped_catalog_is_valid_and_has_the_seeds_fourteen_workloads() -> None:
    values = load_default_values()
    assert len(values.workloads) == 14
    assert len({w.name for w in values.workloads.values()}) == 14


def test_merge_follows_helm_coalescing() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert merge_values(base, {"a": {"c": [3]}, "d": None}) == {"a": {"b": 1, "c": [3]}}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}, "the base is not modified"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"workloads": {"grafana": {"dependsOn": ["nowhere"]}}}, "unknown workload 'nowhere'"),
        ({"workloads": {"riskManager": {"settings": ["riks"]}}}, "unknown group 'riks'"),
        ({"workloads": {"redis": {"healthCheck": {"httpGet": {"path": "/x"}}}}}, "exactly one"),
        ({"settings": {"trading": {"TRADING_ENVIRONMENT": "prod"}}}, "TRADING_ENVIRONMENT"),
        ({"workloads": {"postgres": {"replicas": -1}}}, "replicas"),
        ({"image": {"preStopSleepSeconds": 50}}, "must exceed image.preStopSleepSeconds"),
        ({"backup": {"enabled": False, "restoreFrom": "x.dump"}}, "needs backup.enabled=true"),
    ],
)
def test_bad_values_are_refused(override: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        load_values(override)

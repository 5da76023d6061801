"""Every setting is defined once (mastertrade_model.settings): a value outside its bounds is
refused by `helm install` (values.schema.json), by the API server's check of a
MasterTradeDeployment (the CRD's schema) and by `mastertrade serve` (the service's settings),
and a value inside them is accepted by all three."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from mastertrade.catalog import SERVICES, load_service_module
from mastertrade.core.settings import SettingsError, load_settings
from mastertrade_model import load_default_values
from mastertrade_model.settings import SETTING_GROUPS
from mastertrade_operator.crd import CRD_PATH
from tests.helm import RenderError, render
from tests.operator.crdcheck import schema_errors

pytestmark = pytest.mark.chart

OUT_OF_BOUNDS = [
    ("strategy", "MAX_ACTIVE_STRATEGIES", 1001),
    ("strategy", "MAX_ACTIVE_STRATEGIES", 0),
    ("strategy", "DAILY_GENERATION_COUNT", 100_001),
    ("strategy", "GENERATION_TIME", "24:00"),
    ("trading", "TRADING_ENVIRONMENT", "sandbox"),
    ("trading", "PAPER_TRADING_INITIAL_BALANCE", 0),
    ("costs", "PAPER_FEE_RATE", 0.1),
    ("costs", "PAPER_SLIPPAGE_PCT", -0.0001),
    ("risk", "MAX_POSITION_SIZE_PCT", 1.5),
    ("risk", "MAX_PORTFOLIO_DRAWDOWN_PCT", 0),
    ("email", "EMAIL_PORT", 70000),
    ("logging", "LOG_LEVEL", "TRACE"),
]
AT_THE_BOUNDS = [
    ("strategy", "MAX_ACTIVE_STRATEGIES", 1000),
    ("strategy", "DAILY_GENERATION_COUNT", 100_000),
    ("costs", "PAPER_FEE_RATE", 0),
    ("costs", "PAPER_SLIPPAGE_PCT", 0.0999),
    ("risk", "MAX_POSITION_SIZE_PCT", 1),
    ("logging", "LOG_LEVEL", "CRITICAL"),
]


def service_reading(group: str) -> Any:
    """A service whose catalog entry reads the group, and its settings class."""
    catalog = load_default_values()
    for spec in SERVICES:
        workload = next(w for w in catalog.workloads.values() if w.name == spec.kube_name)
        if group in workload.settings:
            return spec, load_service_module(spec).Settings
    raise AssertionError(f"no service reads settings.{group}")


def resource(group: str, name: str, value: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mastertrade.io/v1alpha1",
        "kind": "MasterTradeDeployment",
        "metadata": {"name": "mt", "namespace": "trading"},
        "spec": {"settings": {group: {name: value}}},
    }


def refusals(group: str, name: str, value: Any) -> dict[str, bool]:
    crd = yaml.safe_load(CRD_PATH.read_text())
    spec, settings_class = service_reading(group)
    try:
        load_settings(settings_class, spec.name, environ={name: str(value)})
        serve = False
    except SettingsError as error:
        serve = name in str(error)
    try:
        render(values={"settings": {group: {name: value}}})
        helm = False
    except RenderError as error:
        helm = name in str(error)
    return {
        "helm": helm,
        "crd": bool(schema_errors(crd, resource(group, name, value))),
        "serve": serve,
    }


@pytest.mark.parametrize(("group", "name", "value"), OUT_OF_BOUNDS)
def test_out_of_bounds_is_refused_everywhere(group: str, name: str, value: Any) -> None:
    assert refusals(group, name, value) == {"helm": True, "crd": True, "serve": True}


@pytest.mark.parametrize(("group", "name", "value"), AT_THE_BOUNDS)
def test_at_the_bounds_is_accepted_everywhere(group: str, name: str, value: Any) -> None:
    assert refusals(group, name, value) == {"helm": False, "crd": False, "serve": False}


def test_every_setting_of_a_group_is_a_setting_of_the_services_reading_it() -> None:
    catalog = load_default_values()
    for spec in SERVICES:
        fields = {
            info.alias or name
            for name, info in load_service_module(spec).Settings.model_fields.items()
        }
        workload = next(w for w in catalog.workloads.values() if w.name == spec.kube_name)
        for group in workload.settings:
            wanted = {info.alias for info in SETTING_GROUPS[group].model_fields.values()}
            assert wanted <= fields, (spec.name, group)


def test_values_yaml_defaults_are_the_models() -> None:
    values = load_default_values().settings.model_dump(by_alias=True)
    for group, model in SETTING_GROUPS.items():
        assert values[group] == model().model_dump(by_alias=True)

"""Unit tests of the pure builders (no helm): Go's text formatting, credentials, names, and
the validity of what they build against the Kubernetes 1.35 schemas."""

from __future__ import annotations

import base64
import dataclasses
from collections import Counter
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from mastertrade_operator.model import load_values
from mastertrade_operator.model.chart import load_chart
from mastertrade_operator.model.resource import parse_resource
from mastertrade_operator.render import KIND_ORDER, build_release, render_all
from mastertrade_operator.render.files import TemplateFileError, build_config_file
from mastertrade_operator.render.gotext import env_string, go_float, to_json, to_yaml
from tests.helm import REPO

SAMPLES = sorted((REPO / "manifests" / "samples").glob("*.yaml"))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.2, "0.2"),
        (0.00001, "1e-05"),
        (0.0001, "0.0001"),
        (12345.678, "12345.678"),
        (1234567.5, "1.2345675e+06"),
        (-0.5, "-0.5"),
        (1.5e23, "1.5e+23"),
    ],
)
def test_floats_print_as_go_prints_them(value: float, text: str) -> None:
    assert go_float(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [(10000.0, "10000"), (1e6, "1000000"), (True, "true"), (False, "false"), (587, "587")],
)
def test_env_strings_as_the_chart_prints_them(value: float | bool | int, text: str) -> None:
    assert env_string(value) == text


def test_to_yaml_quotes_as_go_yaml_does() -> None:
    data = {"A": "587", "B": "yes", "C": "x: y", "D": "one\ntwo\n", "E": "plain", "n": "1e3"}
    assert to_yaml(data) == (
        'A: "587"\nB: "yes"\nC: \'x: y\'\nD: |\n  one\n  two\nE: plain\n"n": "1e3"'
    )
    assert to_yaml({}) == "{}"


def test_to_json_escapes_html_as_go_does() -> None:
    assert to_json(["a<b>&c"]) == '["a\\u003cb\\u003e\\u0026c"]'


def test_render_is_deterministic_apart_from_new_passwords() -> None:
    values = load_values()
    first, second = render_all(values, "mt", "ns"), render_all(values, "mt", "ns")
    assert [o for o in first if o["kind"] != "Secret"] == [
        o for o in second if o["kind"] != "Secret"
    ]


def test_objects_are_unique_and_in_helms_install_order() -> None:
    objects = render_all(load_values(), "mt", "ns")
    keys = Counter((o["kind"], o["metadata"]["name"]) for o in objects)
    assert max(keys.values()) == 1
    order = [KIND_ORDER.index(o["kind"]) for o in objects]
    assert order == sorted(order)


def test_existing_passwords_are_kept_and_given_ones_used() -> None:
    existing = {"postgres-password": "b2xk", "rabbitmq-password": "cmFiYml0"}
    values = load_values({"auth": {"rabbitmqPassword": "given1"}})
    objects = render_all(values, "mt", "ns", existing_credentials=existing)
    (secret,) = [o for o in objects if o["kind"] == "Secret"]
    data = secret["data"]
    assert data["postgres-password"] == "b2xk"
    assert base64.b64decode(data["rabbitmq-password"]) == b"given1"
    generated = base64.b64decode(data["grafana-admin-password"]).decode()
    assert len(generated) == 32 and generated.isalnum()


def test_no_secret_when_the_user_brings_one() -> None:
    values = load_values({"auth": {"existingSecret": "mine"}})
    assert not [o for o in render_all(values, "mt", "ns") if o["kind"] == "Secret"]


def test_operator_objects_do_not_name_helm() -> None:
    text = repr(render_all(load_values(), "mt", "ns"))
    assert "helm.sh/" not in text and "Helm" not in text


def test_a_new_template_expression_in_a_static_file_is_refused() -> None:
    chart = load_chart()
    files = {**chart.files, "rabbitmq/rabbitmq.config": "{{ .Values.x }}"}
    release = build_release(load_values(), "mt", "ns", dataclasses.replace(chart, files=files))
    with pytest.raises(TemplateFileError, match="add its renderer"):
        build_config_file(release, "rabbitmq", "rabbitmq.config")


@pytest.mark.parametrize("path", SAMPLES, ids=lambda path: path.name)
def test_rendered_objects_are_valid_kubernetes_objects(path: Path) -> None:
    resource = parse_resource(yaml.safe_load(path.read_text()))
    for manifest in render_all(resource.values, resource.name, resource.namespace):
        kubernetes_validate.validate(manifest, "1.35.0", strict=True)

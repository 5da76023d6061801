"""Generated files are never edited by hand: regenerate in memory and compare."""

from __future__ import annotations

import json

import jsonschema
import yaml

from mastertrade_model.catalog import SOURCE_CHART
from mastertrade_operator.chartdocs import documented_keys
from mastertrade_operator.generate import GENERATED, stale_files


def test_generated_files_are_up_to_date() -> None:
    stale = [str(path) for path in stale_files()]
    assert stale == [], "stale generated files: run `make generate` and commit the result"


def test_every_generated_json_file_is_valid() -> None:
    json_files = [path for path in GENERATED if path.suffix == ".json"]
    assert json_files
    for path in json_files:
        json.loads(path.read_text())


def test_values_schema_accepts_the_defaults_and_names_every_workload() -> None:
    schema = json.loads((SOURCE_CHART / "values.schema.json").read_text())
    values = yaml.safe_load((SOURCE_CHART / "values.yaml").read_text())
    jsonschema.validate(values, schema)
    assert schema["properties"]["workloads"]["propertyNames"]["enum"] == list(values["workloads"])
    assert "$defs" not in json.dumps(schema) and "$ref" not in json.dumps(schema)


def test_every_value_outside_the_catalog_is_documented() -> None:
    values_yaml = (SOURCE_CHART / "values.yaml").read_text()
    documented = documented_keys(values_yaml)

    def leaves(node: object, prefix: str) -> list[str]:
        if isinstance(node, dict) and node:
            return [leaf for k, v in node.items() for leaf in leaves(v, f"{prefix}{k}.")]
        return [prefix.rstrip(".")]

    data = yaml.safe_load(values_yaml)
    data.pop("workloads")
    undocumented = [
        leaf
        for leaf in leaves(data, "")
        if not any(leaf == d or leaf.startswith(d + ".") for d in documented)
    ]
    assert undocumented == []

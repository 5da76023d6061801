"""Generated files are never edited by hand: regenerate in memory and compare."""

from __future__ import annotations

import json

from mastertrade_operator.generate import GENERATED, stale_files
from mastertrade_operator.model import CHART_DIR


def test_generated_files_are_up_to_date() -> None:
    stale = [str(path) for path in stale_files()]
    assert stale == [], "stale generated files: run `make generate` and commit the result"


def test_every_generated_file_is_valid_json() -> None:
    for path in GENERATED:
        json.loads(path.read_text())


def test_values_schema_accepts_the_defaults_and_names_every_workload() -> None:
    import jsonschema
    import yaml

    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    jsonschema.validate(values, schema)
    assert schema["properties"]["workloads"]["propertyNames"]["enum"] == list(values["workloads"])
    assert "$defs" not in json.dumps(schema) and "$ref" not in json.dumps(schema)

"""Security scan of the rendered chart with checkov (offline): no finding outside the skip list.

checkov is large, so it lives in its own environment (`make checkov` puts it in .tools/checkov).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import VALUES_PROFILES
from tests.helm import REPO, run_helm, template_args

CHECKOV = REPO / ".tools" / "checkov" / "bin" / "checkov"
SKIPS: dict[str, dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "checkov-skips.yaml").read_text()
)

pytestmark = pytest.mark.scan


def run_checkov(manifest_file: Path) -> dict[str, Any]:
    if not CHECKOV.exists():
        raise RuntimeError(
            "checkov not found: run `make checkov` to install it into .tools/checkov"
        )
    done = subprocess.run(
        [
            str(CHECKOV),
            "--file",
            str(manifest_file),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--compact",
            "--quiet",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def is_accepted(check_id: str, resource: str, profile: str) -> bool:
    skip = SKIPS.get(check_id)
    if skip is None or profile not in skip.get("profiles", [profile]):
        return False
    return any(re.fullmatch(pattern, resource) for pattern in skip["resources"])


def test_every_skip_has_a_reason() -> None:
    for check_id, skip in SKIPS.items():
        assert re.fullmatch(r"CKV2?_K8S_\d+", check_id)
        assert len(skip["reason"]) > 40 and skip["check"], check_id


@pytest.mark.parametrize("values_file", VALUES_PROFILES, ids=lambda p: Path(p).name)
def test_no_finding_outside_the_skip_list(values_file: Path, tmp_path: Path) -> None:
    rendered = run_helm(*template_args([values_file], [], "mastertrade", "trading"))
    assert rendered.returncode == 0, rendered.stderr
    manifest_file = tmp_path / "rendered.yaml"
    manifest_file.write_text(rendered.stdout)
    report = run_checkov(manifest_file)
    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] >= 20, "checkov scanned too little to be meaningful"
    unaccepted = [
        f"{finding['check_id']} {finding['resource']}: {finding['check_name']}"
        for finding in report["results"]["failed_checks"]
        if not is_accepted(finding["check_id"], finding["resource"], values_file.name)
    ]
    assert unaccepted == []

"""A release tag sets the version everywhere it is written, and the images' default tag follows
it: the chart's appVersion is what every MasterTrade image reference ends with."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.helm import REPO, of_kind, run_helm

SCRIPT = REPO / "scripts" / "set-release-version.sh"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "charts", tmp_path / "charts")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_a_tag_sets_chart_app_and_package_versions(checkout: Path) -> None:
    subprocess.run([str(SCRIPT), "v1.4.2", str(checkout)], check=True, capture_output=True)
    chart = yaml.safe_load((checkout / "charts/mastertrade/Chart.yaml").read_text())
    assert (chart["version"], chart["appVersion"]) == ("1.4.2", "1.4.2")
    project = tomllib.loads((checkout / "pyproject.toml").read_text())["project"]
    assert project["version"] == "1.4.2"


def test_the_images_follow_the_release(checkout: Path) -> None:
    subprocess.run([str(SCRIPT), "v1.4.2", str(checkout)], check=True, capture_output=True)
    result = run_helm(
        "template", "mt", str(checkout / "charts/mastertrade"), "--set", "operator.enabled=true"
    )
    assert result.returncode == 0, result.stderr
    objects = [o for o in yaml.safe_load_all(result.stdout) if o]
    images = {
        container["image"]
        for deployment in of_kind(objects, "Deployment")
        for container in deployment["spec"]["template"]["spec"]["containers"]
    }
    assert "ghcr.io/mastertrade/mastertrade-operator:1.4.2" in images


def test_a_tag_that_is_not_a_version_changes_nothing(checkout: Path) -> None:
    before = (checkout / "charts/mastertrade/Chart.yaml").read_text()
    done = subprocess.run(
        [str(SCRIPT), "latest", str(checkout)], check=False, capture_output=True, text=True
    )
    assert done.returncode == 2 and "not a version tag" in done.stderr
    assert (checkout / "charts/mastertrade/Chart.yaml").read_text() == before


def test_the_release_builds_every_image_for_amd64_and_arm64() -> None:
    workflow = yaml.safe_load((REPO / ".github/workflows/release.yaml").read_text())
    images = workflow["jobs"]["images"]["strategy"]["matrix"]["include"]
    assert {entry["image"] for entry in images} == {"mastertrade", "mastertrade-operator"}
    for entry in images:
        assert set(entry["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}, entry
        assert (REPO / entry["dockerfile"]).is_file()

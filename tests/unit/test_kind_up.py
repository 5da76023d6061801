"""`make kind-up` / `make kind-down` check their prerequisites before they do anything.

The scripts run for real, with stand-ins for docker, kind, helm and kubectl that record how they
were called: on a machine without a Docker daemon or kind (like this one) the scripts must say
exactly what is missing and how to get it, exit non-zero and call nothing but `docker info`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KIND_UP = REPO / "scripts" / "kind-up.sh"
KIND_DOWN = REPO / "scripts" / "kind-down.sh"
DAEMON_DOWN = (
    "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
    "Is the docker daemon running?"
)


def bash() -> str:
    found = shutil.which("bash")
    assert found is not None
    return found


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    calls: list[str]


class Machine:
    """A PATH of stand-ins (and an empty .tools/bin) that log every call to one file."""

    def __init__(self, root: Path) -> None:
        self.path_dir = root / "path"
        self.tools_dir = root / "tools"
        self.log = root / "calls.log"
        self.path_dir.mkdir()
        self.tools_dir.mkdir()
        self.log.touch()

    def stub(self, name: str, body: str = "exit 0", *, in_tools: bool = False) -> None:
        target = (self.tools_dir if in_tools else self.path_dir) / name
        target.write_text(f'#!{bash()}\nprintf "%s\\n" "{name} $*" >> "{self.log}"\n{body}\n')
        target.chmod(0o755)

    def docker_without_daemon(self) -> None:
        self.stub("docker", f'echo "{DAEMON_DOWN}" >&2\nexit 1')

    def run(self, script: Path, *args: str, system_path: bool = False, **env: str) -> Run:
        path = str(self.path_dir)
        if system_path:  # the stand-ins shadow any real docker/kind/helm/kubectl
            path += ":/usr/bin:/bin"
        done = subprocess.run(
            [bash(), str(script), *args],
            capture_output=True,
            text=True,
            env={
                "PATH": path,
                "HOME": str(self.path_dir),
                "MASTERTRADE_TOOLS_BIN": str(self.tools_dir),
                **env,
            },
            cwd=REPO,
            timeout=60,
            check=False,
        )
        calls = self.log.read_text().splitlines()
        return Run(done.returncode, done.stdout, done.stderr, calls)


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


def test_a_machine_with_nothing_gets_every_missing_tool_named(machine: Machine) -> None:
    run = machine.run(KIND_UP)

    assert run.returncode == 1
    assert "kind-up: missing prerequisites; nothing was done." in run.stderr
    assert "docker: not found on PATH" in run.stderr
    assert "https://docs.docker.com/engine/install/" in run.stderr
    assert "kind: not found on PATH. Install kind v0.31.0" in run.stderr
    assert "go install sigs.k8s.io/kind@v0.31.0" in run.stderr
    for tool in ("helm", "kubectl"):
        assert (
            f"{tool}: not found in {machine.tools_dir} or on PATH. Run `make tools`" in run.stderr
        )
    assert run.stdout == ""
    assert run.calls == []


def test_without_a_docker_daemon_or_kind_only_docker_info_runs(machine: Machine) -> None:
    """This machine: a docker CLI whose daemon is not running, no kind, helm and kubectl there."""
    machine.docker_without_daemon()
    machine.stub("helm", in_tools=True)
    machine.stub("kubectl", in_tools=True)

    run = machine.run(KIND_UP)

    assert run.returncode == 1
    assert "docker: the Docker daemon is not reachable; `docker info` said:" in run.stderr
    assert DAEMON_DOWN in run.stderr
    assert "sudo systemctl start docker" in run.stderr
    assert "kind: not found on PATH" in run.stderr
    assert "helm:" not in run.stderr and "kubectl:" not in run.stderr
    assert run.calls == ["docker info --format {{.ServerVersion}}"]


def test_kind_up_on_this_very_machine_stops_before_doing_anything(machine: Machine) -> None:
    """The real PATH, when it has no kind: nothing can be created, whatever docker says."""
    if shutil.which("kind") is not None:
        # With kind on the real PATH the script would go on to create a cluster; the stand-in
        # tests above cover that machine. CI and the development machines have no kind.
        pytest.skip("kind is installed here: this test is for machines without it")
    machine.stub("helm", in_tools=True)
    machine.stub("kubectl", in_tools=True)
    done = subprocess.run(
        [bash(), str(KIND_UP)],
        capture_output=True,
        text=True,
        env={**os.environ, "MASTERTRADE_TOOLS_BIN": str(machine.tools_dir), "MODE": "auto"},
        cwd=REPO,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1
    assert "kind-up: missing prerequisites; nothing was done." in done.stderr
    assert "kind: not found on PATH" in done.stderr
    if not docker_daemon_answers():
        assert "docker: " in done.stderr
    assert machine.log.read_text() == ""


def docker_daemon_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    info = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=30)
    return info.returncode == 0


def test_kind_down_checks_docker_and_kind_too(machine: Machine) -> None:
    machine.docker_without_daemon()

    run = machine.run(KIND_DOWN)

    assert run.returncode == 1
    assert "kind-down: missing prerequisites; nothing was done." in run.stderr
    assert "Docker daemon is not reachable" in run.stderr
    assert "kind: not found on PATH" in run.stderr
    assert run.calls == ["docker info --format {{.ServerVersion}}"]


def test_an_unknown_mode_is_refused_before_anything_runs(machine: Machine) -> None:
    for name in ("docker", "kind", "helm", "kubectl"):
        machine.stub(name)

    run = machine.run(KIND_UP, MODE="sideways")

    assert run.returncode == 2
    assert "MODE must be operator, chart (or helm) or auto, not 'sideways'" in run.stderr
    assert run.calls == []


def test_with_everything_there_it_creates_builds_loads_installs_and_prints_urls(
    machine: Machine,
) -> None:
    """The chart path end to end, against stand-ins: the commands, in order."""
    for name in ("docker", "kind", "helm", "kubectl"):
        machine.stub(name)

    run = machine.run(KIND_UP, system_path=True, MODE="chart")

    assert run.returncode == 0, run.stderr
    context = "--context kind-mastertrade"
    assert run.calls[:8] == [
        "docker info --format {{.ServerVersion}}",
        "kind get clusters",
        f"kind create cluster --name mastertrade --config {REPO}/kind-config.yaml --wait 120s",
        f"docker build --file {REPO}/services/Dockerfile --tag mastertrade:dev {REPO}",
        f"docker build --file {REPO}/operator/Dockerfile --tag mastertrade-operator:dev {REPO}",
        "kind load docker-image --name mastertrade mastertrade:dev mastertrade-operator:dev",
        f"kubectl {context} apply -f {REPO}/deploy/kind/namespace.yaml",
        f"helm --kube-context kind-mastertrade upgrade --install mastertrade "
        f"{REPO}/charts/mastertrade --namespace mastertrade "
        f"--values {REPO}/charts/mastertrade/values-kind.yaml --set image.tag=dev "
        "--wait --timeout 15m",
    ]
    looked_up = [call for call in run.calls[8:] if call.startswith("kubectl")]
    assert len(looked_up) == 5
    # The stand-in kubectl reports no NodePorts: each entry point gets its port-forward
    for service, ports in [
        ("monitoring-ui", "3000:3000"),
        ("grafana", "3001:3001"),
        ("prometheus", "9090:9090"),
        ("rabbitmq", "15672:15672"),
        ("api-gateway", "8080:8080"),
    ]:
        assert (
            f"kubectl {context} port-forward -n mastertrade svc/mastertrade-{service} {ports}"
            in run.stdout
        )
    assert "http://127.0.0.1:8080/health" in run.stdout


def test_an_existing_cluster_is_reused_and_kind_down_deletes_it(machine: Machine) -> None:
    machine.stub("docker")
    machine.stub("kind", 'if [ "$1 $2" = "get clusters" ]; then echo mastertrade; fi')
    for name in ("helm", "kubectl"):
        machine.stub(name)

    up = machine.run(KIND_UP, system_path=True, MODE="helm")
    assert up.returncode == 0, up.stderr
    assert "kind cluster 'mastertrade' exists: using it" in up.stderr
    assert not any(call.startswith("kind create") for call in up.calls)

    machine.log.write_text("")
    down = machine.run(KIND_DOWN, system_path=True)
    assert down.returncode == 0, down.stderr
    assert down.calls[-1] == "kind delete cluster --name mastertrade"


KIND_E2E = REPO / "scripts" / "kind-e2e.sh"


def test_e2e_steps_drive_helm_on_the_chart_path_and_the_resource_on_the_operator_path(
    machine: Machine,
) -> None:
    for name in ("docker", "kind", "helm", "kubectl"):
        machine.stub(name)
    context = "kubectl --context kind-mastertrade"
    sample = f"{REPO}/manifests/samples/kind-small.yaml"

    scaled = machine.run(KIND_E2E, "scale", system_path=True, MODE="helm")
    assert scaled.returncode == 0, scaled.stderr
    upgrade = [c for c in scaled.calls if c.startswith("helm")]
    assert len(upgrade) == 1
    assert upgrade[0].startswith(
        f"helm --kube-context kind-mastertrade upgrade mastertrade {REPO}/charts/mastertrade "
        "--namespace mastertrade --reuse-values --values "
    )
    assert (
        f"{context} wait --for=jsonpath={{.status.readyReplicas}}=2 --timeout=10m "
        "-n mastertrade deployment/mastertrade-strategy-service"
    ) in scaled.calls

    machine.log.write_text("")
    upgraded = machine.run(KIND_E2E, "upgrade", system_path=True, MODE="operator")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "docker tag mastertrade:dev mastertrade:e2e-upgrade" in upgraded.calls
    assert "kind load docker-image --name mastertrade mastertrade:e2e-upgrade" in upgraded.calls
    assert (
        f"{context} patch -f {sample} --type merge "
        '--patch {"spec": {"image": {"tag": "e2e-upgrade"}}}'
    ) in upgraded.calls
    assert f"{context} wait --for=condition=Ready --timeout=10m -f {sample}" in upgraded.calls
    assert not any(c.startswith("helm") for c in upgraded.calls)


def test_the_delete_step_fails_when_the_pvcs_do_not_survive(machine: Machine) -> None:
    """The stand-in kubectl lists two PVCs before the delete and none after it."""
    for name in ("docker", "kind", "helm"):
        machine.stub(name)
    machine.stub(
        "kubectl",
        f'if [ "$3 $4" = "get pvc" ]; then\n'
        f'  if grep -q "helm.*uninstall" "{machine.log}"; then exit 0; fi\n'
        "  printf '%s\\n' persistentvolumeclaim/data-mastertrade-postgres-0 "
        "persistentvolumeclaim/mastertrade-grafana-data\n"
        "fi",
    )

    run = machine.run(KIND_E2E, "delete", system_path=True, MODE="chart")

    assert run.returncode == 1
    assert "PVCs before the delete: persistentvolumeclaim/data-mastertrade-postgres-0" in run.stderr
    assert any("uninstall mastertrade --namespace mastertrade" in c for c in run.calls)


def test_the_delete_step_passes_when_the_pvcs_stay(machine: Machine) -> None:
    for name in ("docker", "kind", "helm"):
        machine.stub(name)
    machine.stub(
        "kubectl",
        'if [ "$3 $4" = "get pvc" ]; then echo persistentvolumeclaim/data-mastertrade-redis-0; fi',
    )

    run = machine.run(KIND_E2E, "delete", system_path=True, MODE="operator")

    assert run.returncode == 0, run.stderr
    assert "the PVCs stay: persistentvolumeclaim/data-mastertrade-redis-0" in run.stderr
    sample = f"{REPO}/manifests/samples/kind-small.yaml"
    assert (
        f"kubectl --context kind-mastertrade delete -f {sample} --wait --timeout=10m" in run.calls
    )


def test_the_operator_path_applies_crds_then_the_operator_then_waits_for_the_resource(
    machine: Machine,
) -> None:
    for name in ("docker", "kind", "helm", "kubectl"):
        machine.stub(name)

    run = machine.run(KIND_UP, system_path=True, MODE="operator")

    assert run.returncode == 0, run.stderr
    kubectl = [c.removeprefix("kubectl --context kind-mastertrade ") for c in run.calls
               if c.startswith("kubectl")]  # fmt: skip
    sample = f"{REPO}/manifests/samples/kind-small.yaml"
    assert kubectl[0].startswith("apply --server-side --force-conflicts -f ")
    assert kubectl[1].startswith("wait --for=condition=Established")
    assert kubectl[2] == f"apply --server-side --force-conflicts -k {REPO}/deploy/kind"
    assert f"apply -f {sample}" in kubectl
    assert kubectl.index(f"wait --for=condition=Ready --timeout=15m -f {sample}") > kubectl.index(
        f"apply -f {sample}"
    )
    assert not any(c.startswith("helm") for c in run.calls)

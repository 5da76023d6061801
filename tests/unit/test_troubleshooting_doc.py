"""docs/troubleshooting.md and docs/operations.md: every object their kubectl commands name is one
the chart renders.

The commands are read from the document's bash blocks, split as the shell would, and each object
reference (`deploy/mastertrade-strategy-service`, `get secret ... mastertrade-credentials`,
`exec mastertrade-postgres-0`, `-l app.kubernetes.io/component=postgres`) is looked up in
`helm template mastertrade charts/mastertrade -n trading` (and its scaled ci scenario, where
the PodDisruptionBudgets appear), StatefulSet pods and their volume
claims included. The operator's objects and the custom resource (`mtd/...`) are looked up in
manifests/.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helm import Manifest, render

pytestmark = pytest.mark.chart

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "troubleshooting.md"
OPERATIONS_DOC = REPO / "docs" / "operations.md"
NAMESPACE = "trading"


@dataclass(frozen=True)
class Minimums:
    """How much each document must hold, so that a broken parser cannot pass it vacuously."""

    references: int
    selectors: int
    kubectl: int
    helm: int


DOCS = {
    DOC: Minimums(references=40, selectors=10, kubectl=40, helm=3),
    OPERATIONS_DOC: Minimums(references=25, selectors=5, kubectl=30, helm=5),
}

KINDS = {
    "deploy": "Deployment",
    "deployment": "Deployment",
    "statefulset": "StatefulSet",
    "sts": "StatefulSet",
    "svc": "Service",
    "service": "Service",
    "job": "Job",
    "pod": "Pod",
    "po": "Pod",
    "pvc": "PersistentVolumeClaim",
    "configmap": "ConfigMap",
    "cm": "ConfigMap",
    "secret": "Secret",
    "networkpolicy": "NetworkPolicy",
    "netpol": "NetworkPolicy",
    "pdb": "PodDisruptionBudget",
    "cronjob": "CronJob",
    "cj": "CronJob",
    "mtd": "MasterTradeDeployment",
    "mastertradedeployment": "MasterTradeDeployment",
}
FLAGS_WITH_VALUE = {
    "-n", "--namespace", "-o", "--output", "-l", "--selector", "-c", "--container", "-p",
    "--patch", "--type", "--image", "--labels", "--sort-by", "--since", "--tail", "--timeout",
    "--max-log-requests", "--restart", "--context", "-f", "--filename", "--for", "--field-selector",
}  # fmt: skip
# No kubeconfig, no helm repositories: `--help` needs neither
HELP_ENV = {"HOME": "/tmp", "PATH": "/usr/bin:/bin", "KUBECONFIG": "/dev/null"}
NAMED_BY_TYPE = {"get", "describe", "patch", "delete", "edit", "label", "annotate"}
NAMED_AS_POD = {"logs", "exec", "port-forward", "attach", "cp"}


def bash_blocks(markdown: str) -> Iterator[str]:
    for block in re.findall(r"```bash\n(.*?)```", markdown, re.DOTALL):
        yield block.replace("\\\n", " ")


def kubectl_commands(markdown: str) -> list[list[str]]:
    """Each kubectl invocation as its words, up to a pipe, a redirection or `--`."""
    return tool_commands(markdown, "kubectl")


def positional(command: list[str]) -> tuple[list[str], list[str]]:
    """(positional words, label selectors) of one kubectl command."""
    words, selectors = [], []
    skip_next = False
    for index, token in enumerate(command):
        if skip_next:
            skip_next = False
            continue
        if token.startswith("-"):
            flag = token.split("=", 1)[0]
            if flag in {"-l", "--selector"}:
                selectors.append(token.split("=", 1)[1] if "=" in token else command[index + 1])
            skip_next = flag in FLAGS_WITH_VALUE and "=" not in token
            continue
        words.append(token)
    return words, selectors


def references(command: list[str]) -> list[tuple[str, str]]:
    """(kind alias, name) of every object the command names."""
    words, _ = positional(command)
    found = [
        tuple(word.split("/", 1)) for word in words[1:] if re.fullmatch(r"[a-z]+/[a-z0-9-]+", word)
    ]
    verb = words[0] if words else ""
    if verb in NAMED_BY_TYPE and len(words) > 2 and "/" not in words[1] and "," not in words[1]:
        found += [(words[1], name) for name in words[2:]]
    if verb in NAMED_AS_POD and len(words) > 1 and "/" not in words[1]:
        found.append(("pod", words[1]))
    return [(kind, name) for kind, name in found]


def rendered_names(objects: list[Manifest]) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for obj in objects:
        names.setdefault(obj["kind"], set()).add(obj["metadata"]["name"])
        if obj["kind"] != "StatefulSet":
            continue
        for ordinal in range(obj["spec"].get("replicas", 1)):
            pod = f"{obj['metadata']['name']}-{ordinal}"
            names.setdefault("Pod", set()).add(pod)
            for claim in obj["spec"].get("volumeClaimTemplates", []):
                claim_name = f"{claim['metadata']['name']}-{pod}"
                names.setdefault("PersistentVolumeClaim", set()).add(claim_name)
    # The operator's own objects (manifests/) and the sample resources
    for path in (REPO / "manifests").rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and "metadata" in doc and doc.get("kind") != "Kustomization":
                names.setdefault(doc["kind"], set()).add(doc["metadata"]["name"])
    return names


def selector_matches(selector: str, objects: list[Manifest]) -> bool:
    wanted = dict(term.split("=", 1) for term in selector.split(","))
    if set(wanted) == {"kubernetes.io/service-name"}:  # set on EndpointSlices by Kubernetes
        return any(
            o["kind"] == "Service" and o["metadata"]["name"] == wanted["kubernetes.io/service-name"]
            for o in objects
        )
    return any(
        wanted.items() <= (o["metadata"].get("labels") or {}).items()
        for o in objects
        if o["kind"] in {"Deployment", "StatefulSet", "Service", "PersistentVolumeClaim"}
        or o["kind"] == "Pod"
    ) or any(
        wanted.items() <= (o["spec"]["template"]["metadata"].get("labels") or {}).items()
        for o in objects
        if o["kind"] in {"Deployment", "StatefulSet"}
    )


@pytest.fixture(scope="module")
def chart_objects() -> list[Manifest]:
    """The defaults, plus the scaled scenario: the doc scales a service, then shows its PDB;
    and the Secret the credentials hook Job makes (`mastertrade-operator credentials NAME`)."""
    scaled = REPO / "charts" / "mastertrade" / "ci" / "scaled-values.yaml"
    objects = render(namespace=NAMESPACE) + render([scaled], namespace=NAMESPACE)
    return objects + made_by_hooks(objects)


def made_by_hooks(objects: list[Manifest]) -> list[Manifest]:
    made = []
    for job in (o for o in objects if o["kind"] == "Job"):
        args = job["spec"]["template"]["spec"]["containers"][0].get("args") or []
        if args[:1] == ["credentials"]:
            made.append({"kind": "Secret", "metadata": {"name": args[1], "labels": {}}})
    return made


@pytest.fixture(scope="module", params=sorted(DOCS), ids=lambda path: path.name)
def doc(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


@pytest.fixture
def commands(doc: Path) -> list[list[str]]:
    return kubectl_commands(doc.read_text())


def test_every_object_a_kubectl_command_names_is_rendered_by_the_chart(
    chart_objects: list[Manifest], commands: list[list[str]], doc: Path
) -> None:
    names = rendered_names(chart_objects)
    checked = 0
    for command in commands:
        for alias, name in references(command):
            assert alias in KINDS, f"unknown kind {alias!r} in: kubectl {' '.join(command)}"
            kind = KINDS[alias]
            assert name in names.get(kind, set()), (
                f"the chart renders no {kind} {name!r}: kubectl {' '.join(command)}"
            )
            checked += 1
    assert checked >= DOCS[doc].references, (
        f"only {checked} object references found: is the parser still right?"
    )


def test_every_label_selector_matches_rendered_objects(
    chart_objects: list[Manifest], commands: list[list[str]], doc: Path
) -> None:
    selectors = [s for command in commands for s in positional(command)[1]]
    assert len(selectors) >= DOCS[doc].selectors
    for selector in selectors:
        assert selector_matches(selector, chart_objects), f"nothing is labelled {selector}"


def test_every_command_names_the_namespace(commands: list[list[str]]) -> None:
    global_commands = {("top", "nodes"), ("describe", "nodes"), ("get", "storageclass")}
    for command in commands:
        words, _ = positional(command)
        if tuple(words[:2]) in global_commands:
            continue
        assert "-n" in command or "--namespace" in command, f"kubectl {' '.join(command)}"


def tool_commands(markdown: str, tool: str) -> list[list[str]]:
    """Each invocation of `tool` in the bash blocks, as its words up to a pipe or `--`."""
    commands = []
    for block in bash_blocks(markdown):
        for line in block.splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;<>")
            lexer.whitespace_split = True
            words = list(lexer)
            for start, word in enumerate(words):
                if word == tool:
                    command = []
                    for token in words[start + 1 :]:
                        if token in {"|", "||", "&", "&&", ";", ">", "<", "--"}:
                            break
                        command.append(token)
                    commands.append(command)
    return commands


@pytest.mark.parametrize("tool", ["kubectl", "helm"])
def test_every_command_uses_subcommands_and_flags_the_real_tool_knows(tool: str, doc: Path) -> None:
    """`<tool> <words> --help` fails on an unknown subcommand or flag, without a cluster."""
    binary = REPO / ".tools" / "bin" / tool
    assert binary.exists(), f"{tool} not found: run `make tools`"
    commands = tool_commands(doc.read_text(), tool)
    minimums = DOCS[doc]
    assert len(commands) >= (minimums.kubectl if tool == "kubectl" else minimums.helm)
    for command in commands:
        done = subprocess.run(
            [str(binary), *command, "--help"],
            capture_output=True, text=True, check=False, timeout=30,
            env=HELP_ENV,
        )  # fmt: skip
        assert done.returncode == 0, f"{tool} {' '.join(command)}: {done.stderr}"

"""The `mastertrade-operator` console script.

- `render -f CR.yaml` prints the objects the operator would apply for a MasterTradeDeployment, as
  a YAML stream like `helm template` (for GitOps previews and `kubectl diff`), through the
  operator's own render: the bundled chart by helm. No password is rendered: the operator makes
  the credentials Secret itself, once.
- `crd` prints the CustomResourceDefinition; `crd --apply` server-side applies it (the chart's
  pre-upgrade hook).
- `uninstall NAME -n NS` deletes a resource and waits until its finalizer has run (the chart's
  pre-delete hook, while the operator still runs).
- `credentials NAME -n NS` creates the credentials Secret when it is missing and adds missing
  keys, never changing one (the chart's hook, in chart mode).
- `run --namespace NS ... | --all-namespaces` runs the operator (see `runner.py`).
- `status NAME [-n NS]` summarises an installation (see `summary.py`), with the operator's
  credentials: in a pod its service account, elsewhere the kubeconfig.

Exit codes: 0 done, 2 bad input (the message names the field to fix) or, for `status`, no such
resource; `status` exits 1 when the installation is not Ready.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from mastertrade_operator.crd import render_crd_yaml
from mastertrade_operator.kube import Login, default_login
from mastertrade_operator.lifecycle import apply_crd, ensure_secret, finish_resource
from mastertrade_operator.reconcile.credentials import credentials_secret_name
from mastertrade_operator.reconcile.runtime import Timing
from mastertrade_operator.render import Manifest, Renderer, RenderError
from mastertrade_operator.render.helm import HelmNotUsableError, find_helm
from mastertrade_operator.resource import ResourceError, parse_resource
from mastertrade_operator.runner import PEERING_NAME, Options, parse_priority, run
from mastertrade_operator.summary import run_status

USAGE_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mastertrade-operator",
        description="Reconciles MasterTradeDeployment resources into MasterTrade's workloads.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    render = commands.add_parser("render", help="print the objects a resource renders to")
    render.add_argument(
        "-f", "--filename", required=True, help="MasterTradeDeployment YAML file, or - for stdin"
    )
    add_helm_argument(render)
    crd = commands.add_parser("crd", help="print the MasterTradeDeployment CRD")
    crd.add_argument(
        "--apply", action="store_true", help="server-side apply it instead (the upgrade hook)"
    )
    add_hook_parsers(commands)
    add_run_parser(commands)
    status = commands.add_parser("status", help="summarise an installation; exit 1 if not Ready")
    status.add_argument("name", help="the MasterTradeDeployment's name")
    status.add_argument("-n", "--namespace", help="its namespace (default: the kubeconfig's)")
    return parser


def add_hook_parsers(commands: Any) -> None:
    """What the chart's hook Jobs run, with their ServiceAccount (or the kubeconfig)."""
    uninstall = commands.add_parser(
        "uninstall", help="delete a resource and wait until the operator has finished it"
    )
    uninstall.add_argument("name", help="the MasterTradeDeployment's name")
    uninstall.add_argument("-n", "--namespace", required=True, help="its namespace")
    uninstall.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")
    credentials = commands.add_parser(
        "credentials", help="create the credentials Secret when missing (never replace one)"
    )
    credentials.add_argument("name", help="the Secret's name")
    credentials.add_argument("-n", "--namespace", required=True, help="its namespace")
    credentials.add_argument("--instance", default="", help="app.kubernetes.io/instance label")


def add_helm_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--helm",
        help="helm binary that renders the chart (default: $MASTERTRADE_HELM, else helm on PATH)",
    )


def add_run_parser(commands: Any) -> None:
    run = commands.add_parser("run", help="run the operator")
    add_helm_argument(run)
    scope = run.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NS",
        help="watch this namespace (repeatable; globs as kopf takes them)",
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch the whole cluster"
    )
    run.add_argument("--standalone", action="store_true", help="no peering with other replicas")
    run.add_argument("--peering-name", default=PEERING_NAME, help="kopf peering object's name")
    run.add_argument(
        "--priority",
        type=parse_priority,
        default=0,
        help="peering priority of this replica: the highest works, the others wait; `auto` "
        "draws a random one, so that identical replicas elect one (active/standby)",
    )
    run.add_argument("--liveness", default=Options.liveness, help="liveness endpoint URL")
    run.add_argument(
        "--metrics-port", type=int, default=Options.metrics_port, help="/metrics port, 0: none"
    )
    run.add_argument("--resync", type=float, default=Timing.resync, help="resync seconds")
    run.add_argument(
        "--phase-retry", type=float, default=Timing.phase_retry, help="seconds between checks"
    )


def build_run_options(arguments: argparse.Namespace) -> Options:
    return Options(
        namespaces=arguments.namespaces or (),
        clusterwide=arguments.all_namespaces,
        standalone=arguments.standalone,
        peering_name=arguments.peering_name,
        priority=arguments.priority,
        liveness=arguments.liveness,
        metrics_port=arguments.metrics_port,
        helm=arguments.helm,
        timing=Timing(phase_retry=arguments.phase_retry, resync=arguments.resync),
    )


def read_document(filename: str, stdin: TextIO) -> Any:
    """The one YAML document of a file (or stdin), or a ResourceError saying why not."""
    try:
        text = stdin.read() if filename == "-" else Path(filename).read_text()
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except OSError as error:
        raise ResourceError(f"{filename}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ResourceError(f"{filename}: not valid YAML: {error}") from None
    if len(documents) != 1:
        raise ResourceError(
            f"{filename}: expected one MasterTradeDeployment, found {len(documents)}"
        )
    return documents[0]


def format_stream(objects: list[Manifest]) -> str:
    """A YAML stream, each document opened by `---` as `helm template` prints them."""
    return "".join(
        "---\n" + yaml.safe_dump(manifest, sort_keys=False, width=100) for manifest in objects
    )


def command_render(filename: str, helm: str | None, stdin: TextIO, stdout: TextIO) -> int:
    """What the operator would apply, through the operator's own render (the credentials
    Secret, which the operator makes itself, is named but not printed)."""
    resource = parse_resource(read_document(filename, stdin))
    try:
        secret = credentials_secret_name(resource)
        objects = Renderer(find_helm(helm)).render_now(resource, secret)
    except RenderError as error:
        raise ResourceError(str(error)) from None
    stdout.write(format_stream(objects))
    return 0


def main(
    argv: Sequence[str] | None = None,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    stderr: TextIO = sys.stderr,
    login: Login | None = None,
) -> int:
    arguments = build_parser().parse_args(argv)
    if arguments.command == "status":
        login = login or default_login()
        return run_status(arguments.name, arguments.namespace, login, stdout, stderr)
    try:
        return run_command(arguments, stdin, stdout)
    except ResourceError as error:
        stderr.write(f"mastertrade-operator: invalid MasterTradeDeployment:\n{error}\n")
    except HelmNotUsableError as error:
        stderr.write(f"mastertrade-operator: cannot render: {error}\n")
    return USAGE_ERROR


def run_command(arguments: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    """`render`, `crd` or `run` (which returns when the operator stops)."""
    if arguments.command == "render":
        return command_render(arguments.filename, arguments.helm, stdin, stdout)
    if arguments.command == "crd":
        if arguments.apply:
            return apply_crd(default_login(), stdout)
        stdout.write(render_crd_yaml())
        return 0
    if arguments.command == "uninstall":
        done = finish_resource(
            default_login(), arguments.namespace, arguments.name, arguments.timeout, stdout
        )
        return 0 if done else 1
    if arguments.command == "credentials":
        instance = arguments.instance or arguments.name
        return ensure_secret(default_login(), arguments.namespace, arguments.name, instance, stdout)
    run(build_run_options(arguments))
    return 0


if __name__ == "__main__":
    sys.exit(main())

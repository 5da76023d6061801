"""`mastertrade-operator run`: kopf with the operator's registry, settings and runtime, its
liveness endpoint (/healthz), Prometheus metrics (/metrics) and peering between replicas.

`build_operator` assembles everything kopf needs without starting it, so the tests run exactly
what production runs, against another login.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

import kopf
from prometheus_client import start_http_server

from mastertrade_operator.kube import Kube, Login, default_login
from mastertrade_operator.reconcile import Runtime, Timing, build_registry, configure
from mastertrade_operator.render import Renderer
from mastertrade_operator.render.helm import Helm, find_helm

PEERING_NAME = "mastertrade-operator"
AUTO_PRIORITY_RANGE = 1_000_000


def parse_priority(text: str) -> int:
    """A peering priority; `auto` is a random one (replicas of one Deployment share their
    arguments, and kopf freezes peers of equal priority)."""
    if text == "auto":
        return 1 + secrets.randbelow(AUTO_PRIORITY_RANGE)
    return int(text)


@dataclass(frozen=True)
class Options:
    """What `run` is told on its command line."""

    helm: str | None = None
    """The helm binary (a path or a command name); None: $MASTERTRADE_HELM, else PATH."""

    namespaces: Sequence[str] = ()
    clusterwide: bool = False
    standalone: bool = False
    peering_name: str = PEERING_NAME
    priority: int = 0
    liveness: str = "http://0.0.0.0:8080/healthz"
    metrics_port: int = 9090
    timing: Timing = field(default_factory=Timing)


@dataclass(frozen=True)
class Assembly:
    registry: kopf.OperatorRegistry
    settings: kopf.OperatorSettings
    runtime: Runtime

    @property
    def memo(self) -> kopf.Memo:
        return kopf.Memo(runtime=self.runtime)


def build_operator(
    timing: Timing, helm: Helm, login: Login | None = None, namespaces: Sequence[str] = ()
) -> Assembly:
    settings = configure(kopf.OperatorSettings(), namespaces)
    kube = Kube(login or default_login())
    runtime = Runtime(kube=kube, renderer=Renderer(helm), timing=timing)
    return Assembly(registry=build_registry(timing), settings=settings, runtime=runtime)


def run(options: Options) -> None:
    """Run until stopped (SIGTERM/SIGINT); a helm that cannot render stops it at once."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    helm = find_helm(options.helm)
    logging.getLogger(__name__).info("rendering with %s (helm %s)", helm.binary, helm.version)
    assembly = build_operator(options.timing, helm, namespaces=options.namespaces)
    if options.metrics_port:
        start_http_server(options.metrics_port, registry=assembly.runtime.metrics.registry)
    kopf.run(
        registry=assembly.registry,
        settings=assembly.settings,
        memo=assembly.memo,
        namespaces=list(options.namespaces),
        clusterwide=options.clusterwide,
        standalone=options.standalone,
        peering_name=None if options.standalone else options.peering_name,
        priority=options.priority,
        liveness_endpoint=options.liveness,
    )

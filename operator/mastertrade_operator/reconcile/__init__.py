"""The operator's kopf registry and settings: which handler answers which event.

Nothing is registered at import time: `build_registry(timing)` returns a fresh registry, and
`configure(settings)` sets where kopf keeps its own state (annotations under mastertrade.io, a
mastertrade.io finalizer) so that kopf never writes into the resource's status.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import kopf

from mastertrade_operator.kube import MASTERTRADE, OWNED
from mastertrade_operator.reconcile.deletion import on_delete_mastertrade
from mastertrade_operator.reconcile.handlers import (
    index_mastertrade,
    on_change_mastertrade,
    on_event_child,
    on_progress_mastertrade,
    on_resync_mastertrade,
    runtime_of,
)
from mastertrade_operator.reconcile.runtime import Runtime, Timing
from mastertrade_operator.render import MANAGED_BY

FINALIZER = "mastertrade.io/finalizer"
PREFIX = "mastertrade.io"

__all__ = ["FINALIZER", "Runtime", "Timing", "build_registry", "configure"]


async def on_login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
    """kopf and the operator's own client log in once, the same way (kopf calls it again on
    a 401 or when the login expires)."""
    return await runtime_of(memo).kube.connection_info()


def is_exact(namespace: str) -> bool:
    """A namespace name, not one of kopf's glob or negation patterns."""
    return not any(char in namespace for char in "*?[]!,")


def configure(
    settings: kopf.OperatorSettings, namespaces: Sequence[str] = ()
) -> kopf.OperatorSettings:
    """kopf's settings; watching named namespaces only, kopf scans no namespaces (a
    namespaced Role may not list them) and no CRDs (the one it serves exists at start)."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.posting.loggers = False  # only the Events the operator posts on purpose
    settings.watching.server_timeout = 300
    settings.scanning.disabled = bool(namespaces) and all(map(is_exact, namespaces))
    # a deleted resource keeps its finalizer until its timer's reconcile is over: check often
    settings.background.cancellation_polling = 1.0
    return settings


def build_registry(timing: Timing) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    mtd = (MASTERTRADE.group, MASTERTRADE.version, MASTERTRADE.plural)
    # kopf.on.* return decorators; calling them here keeps the registry free of import-time state
    kopf.on.login(registry=registry)(on_login)
    kopf.index(*mtd, registry=registry, id="mastertrade_index")(index_mastertrade)
    for on in (kopf.on.create, kopf.on.update, kopf.on.resume):
        on(*mtd, registry=registry, id="reconcile", backoff=timing.phase_retry)(
            on_change_mastertrade
        )
    kopf.daemon(
        *mtd,
        registry=registry,
        id="progress",
        cancellation_timeout=1.0,
        cancellation_polling=0.5,  # a deleted resource waits for it: check often
    )(on_progress_mastertrade)
    kopf.timer(
        *mtd, registry=registry, id="resync", interval=timing.resync, initial_delay=timing.resync
    )(on_resync_mastertrade)
    kopf.on.delete(*mtd, registry=registry, id="release", errors=kopf.ErrorsMode.IGNORED)(
        on_delete_mastertrade
    )
    managed = {"app.kubernetes.io/managed-by": MANAGED_BY}
    for resource in OWNED.values():
        kopf.on.event(
            group=resource.group,
            version=resource.version,
            plural=resource.plural,
            registry=registry,
            id=f"drift-{resource.plural}",
            labels=managed,
        )(on_event_child)
    return registry

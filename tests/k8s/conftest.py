"""Fixtures of the real-API tier: one control plane for the session (the shared kit, or envtest
binaries named by KUBEBUILDER_ASSETS), the operator's ServiceAccount with its namespaced RBAC,
and the operator running as a local process with that ServiceAccount's token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s.controlplane import (
    ControlPlane,
    Identity,
    build_identity,
    install_operator_rbac,
)
from tests.k8s.operator_process import OperatorProcess


@pytest.fixture(scope="session")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    started = ControlPlane.start(tmp_path_factory.mktemp("k8s"))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def identity(plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Identity:
    install_operator_rbac(plane)
    return build_identity(plane, tmp_path_factory.mktemp("identity"))


@pytest.fixture(scope="module")
def operator(
    plane: ControlPlane, identity: Identity, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator, healthy, for the tests of one module; its log is printed on failure."""
    log = Path(tmp_path_factory.mktemp("operator")) / "operator.log"
    process = OperatorProcess(identity.embedded, log)
    try:
        process.wait_healthy()
        yield process
    finally:
        process.stop()
        print(f"--- operator log ({log}) ---\n{process.log()[-20000:]}")

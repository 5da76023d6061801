"""The operator's own Prometheus metrics: reconciles, their durations, errors, managed objects.

Built into a registry of their own (nothing at import time); `mastertrade-operator run` serves
them on /metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    reconciles: Counter
    durations: Histogram
    errors: Counter
    managed_objects: Gauge
    applies: Counter


def build_metrics(registry: CollectorRegistry | None = None) -> Metrics:
    registry = registry or CollectorRegistry()
    return Metrics(
        registry=registry,
        reconciles=Counter(
            "mastertrade_operator_reconciles",
            "Reconciles of MasterTradeDeployments, by trigger and result",
            ["trigger", "result"],
            registry=registry,
        ),
        durations=Histogram(
            "mastertrade_operator_reconcile_duration_seconds",
            "Time one reconcile took",
            registry=registry,
        ),
        errors=Counter(
            "mastertrade_operator_errors",
            "Reconciles that failed, by reason",
            ["reason"],
            registry=registry,
        ),
        managed_objects=Gauge(
            "mastertrade_operator_managed_objects",
            "Objects the operator keeps for each MasterTradeDeployment",
            ["namespace", "name"],
            registry=registry,
        ),
        applies=Counter(
            "mastertrade_operator_applies",
            "Server-side applies, by kind and why",
            ["kind", "reason"],
            registry=registry,
        ),
    )

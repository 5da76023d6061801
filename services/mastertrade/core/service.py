"""The description of one MasterTrade service: its code, its topology use, and its deployment.

What the code decides (package, exchanges, queues) is written here; what the deployment decides
(port, dependencies, health path) is read from the workload catalog, charts/mastertrade/
values.yaml, the one list of workloads that the chart and the operator read too.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from mastertrade_model import Workload, load_default_values
from mastertrade_model.topology import (
    DEAD_LETTER_QUEUE,
    DEAD_LETTERS,
    EXCHANGES,
    QUEUES,
    Exchange,
    Queue,
)
from mastertrade_model.values import Dependency


@dataclass(frozen=True)
class ServiceSpec:
    """One service as the seed names it (`market_data_service`) and how it runs."""

    name: str
    package: str
    publishes: tuple[Exchange, ...] = ()
    consumes: tuple[str, ...] = ()
    title: str = ""

    @property
    def kube_name(self) -> str:
        """The Kubernetes name: the seed's name with dashes (`market-data-service`)."""
        return self.name.replace("_", "-")

    @property
    def port(self) -> int:
        """The seed's port, from the workload catalog."""
        return _workload(self.kube_name).ports[0].port

    @property
    def dependencies(self) -> tuple[Dependency, ...]:
        """The infrastructure it connects to (and /health checks), from the catalog."""
        return tuple(Dependency(str(c)) for c in _workload(self.kube_name).connections)

    @property
    def health_path(self) -> str:
        """Where the seed's health JSON is served, from the catalog's health check."""
        check = _workload(self.kube_name).healthCheck.httpGet
        if check is None:
            raise LookupError(f"workload {self.kube_name} has no HTTP health check")
        return check.path

    @property
    def upstream_variables(self) -> dict[str, str]:
        """Variable -> the seed name of the service whose URL it holds (`API_GATEWAY_URL` ->
        `api_gateway`), from the catalog entry's `serviceUrls`: the services this one calls."""
        workloads = load_default_values().workloads
        return {
            variable: workloads[key].name.replace("-", "_")
            for variable, key in _workload(self.kube_name).serviceUrls.items()
        }

    def consumed_queues(self) -> tuple[Queue, ...]:
        """The topology's queues this service reads, plus the dead-letter queue they feed."""
        wanted = set(self.consumes)
        if wanted:
            wanted.add(DEAD_LETTER_QUEUE)
        return tuple(queue for queue in QUEUES if queue.name in wanted)

    def declared_queues(self) -> tuple[Queue, ...]:
        """Queues to declare: those it reads, and those its messages are routed to (bound to
        an exchange it publishes on). A message no queue is bound for is dropped by the broker
        and confirmed all the same: declaring where its messages go, a publisher loses none
        to a broker that lost its state (a volume lost, a new node) and a consumer that has
        not declared its queue yet."""
        published = {exchange.name for exchange in self.publishes}
        wanted = {queue.name for queue in self.consumed_queues()} | {
            queue.name
            for queue in QUEUES
            if any(binding.exchange in published for binding in queue.bindings)
        }
        if wanted:
            wanted.add(DEAD_LETTER_QUEUE)
        return tuple(queue for queue in QUEUES if queue.name in wanted)

    def declared_exchanges(self) -> tuple[Exchange, ...]:
        """Exchanges to declare: those published to, those the queues bind to, and the DLX."""
        names = {exchange.name for exchange in self.publishes}
        for queue in self.declared_queues():
            names.update(binding.exchange for binding in queue.bindings)
        if names:
            names.add(DEAD_LETTERS.name)
        return tuple(exchange for exchange in EXCHANGES if exchange.name in names)


@cache
def _workloads_by_name() -> dict[str, Workload]:
    return {w.name: w for w in load_default_values().workloads.values()}


def _workload(kube_name: str) -> Workload:
    try:
        return _workloads_by_name()[kube_name]
    except KeyError:
        raise LookupError(f"{kube_name} is not in the workload catalog") from None

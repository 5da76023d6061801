"""`mastertrade-operator status`: one installation at a glance.

`build_summary` is pure: from the MasterTradeDeployment, its live Deployments and StatefulSets
and its backup CronJob (None when backups are off) it formats the phase, the conditions with
their reasons, the trading environment, whether the status is current (observedGeneration vs
generation), a table of the workloads (ready/desired, health, image = version) and when the last
backup ran. `read_installation` fetches those objects through `Kube` (the one API client);
`is_ready` decides the command's exit code.

`run_status` is the command: exit 0 when Ready, 1 when not, 2 when the resource does not exist
or the API cannot be reached (a message on stderr says which).
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import kopf

from mastertrade_operator.kube import CONNECTION_ERRORS, MASTERTRADE, OWNED, Kube, Login

Manifest = dict[str, Any]

INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
WORKLOAD_ORDER = ("StatefulSet", "Deployment")
"""Infrastructure (the StatefulSets) first, as the rollout brings it up."""
HEADERS = ("KIND", "NAME", "READY", "HEALTH", "IMAGE")
NOT_READY, NOT_FOUND = 1, 2


@dataclass(frozen=True)
class Installation:
    """What the status command reads from the cluster for one MasterTradeDeployment."""

    resource: Manifest
    workloads: list[Manifest]
    cronjob: Manifest | None


async def read_installation(kube: Kube, namespace: str, name: str) -> Installation | None:
    """The resource, its workloads and its backup CronJob; None when there is no resource."""
    async with kube.opened():
        resource = await kube.fetch(MASTERTRADE, namespace, name)
        if resource is None:
            return None
        selector = f"{INSTANCE_LABEL}={name}"
        workloads = [
            workload
            for kind in WORKLOAD_ORDER
            for workload in await kube.list(OWNED[kind], namespace, selector)
        ]
        cronjobs = await kube.list(
            OWNED["CronJob"], namespace, f"{selector},{COMPONENT_LABEL}=backup"
        )
    return Installation(resource, workloads, cronjobs[0] if cronjobs else None)


def is_ready(resource: Manifest) -> bool:
    """Phase Ready, the Ready condition True, and the status about the current spec."""
    status = resource.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    return (
        status.get("phase") == "Ready"
        and conditions.get("Ready") == "True"
        and not is_stale(resource)
    )


def is_stale(resource: Manifest) -> bool:
    """The status describes an older spec than the current one (or none at all)."""
    generation = resource.get("metadata", {}).get("generation")
    observed = (resource.get("status") or {}).get("observedGeneration")
    return generation is not None and (observed is None or observed < generation)


def parse_time(value: str) -> datetime.datetime:
    parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def format_age(then: datetime.datetime, now: datetime.datetime) -> str:
    seconds = int((now - then).total_seconds())
    if seconds < 60:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    raise AssertionError("unreachable")  # pragma: no cover


def format_moment(value: str, now: datetime.datetime) -> str:
    """`2026-11-25 02:00 UTC (5h ago)`."""
    moment = parse_time(value).astimezone(datetime.UTC)
    return f"{moment:%Y-%m-%d %H:%M} UTC ({format_age(moment, now)})"


def describe_backup(cronjob: Manifest | None, now: datetime.datetime) -> str:
    if cronjob is None:
        return "backups disabled (no backup CronJob)"
    status = cronjob.get("status") or {}
    suspended = " (CronJob suspended)" if cronjob.get("spec", {}).get("suspend") else ""
    if status.get("lastSuccessfulTime"):
        return format_moment(status["lastSuccessfulTime"], now) + suspended
    if status.get("lastScheduleTime"):
        scheduled = format_moment(status["lastScheduleTime"], now)
        return f"no backup yet (last scheduled {scheduled}){suspended}"
    return "no backup yet" + suspended


def describe_phase(resource: Manifest) -> str:
    status = resource.get("status") or {}
    phase = status.get("phase") or "Unknown (the operator has not reported yet)"
    generation = resource.get("metadata", {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is None:
        return str(phase)
    stale = " - stale, the operator has not caught up" if is_stale(resource) else ""
    return f"{phase} (generation {generation}, observed {observed if observed else '-'}){stale}"


def describe_conditions(resource: Manifest) -> list[str]:
    conditions = (resource.get("status") or {}).get("conditions") or []
    return [
        f"{c.get('type')}={c.get('status')} ({c.get('reason', '')}: {c.get('message', '')})"
        for c in conditions
    ] or ["none yet"]


def workload_health(workload: Manifest) -> tuple[int, int, str]:
    """(ready, desired, health): Updating while the controller rolls out the current spec."""
    spec, status = workload.get("spec") or {}, workload.get("status") or {}
    desired = int(spec.get("replicas", 1))
    ready = int(status.get("readyReplicas") or 0)
    generation = workload.get("metadata", {}).get("generation")
    observed = status.get("observedGeneration")
    updated = status.get("updatedReplicas")
    if (observed is not None and generation is not None and observed < generation) or (
        updated is not None and int(updated) < desired
    ):
        return ready, desired, "Updating"
    return ready, desired, "Ready" if ready >= desired else "NotReady"


def workload_image(workload: Manifest) -> str:
    containers = workload.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
    return str(containers[0].get("image", "-")) if containers else "-"


def workload_row(workload: Manifest) -> tuple[str, ...]:
    ready, desired, health = workload_health(workload)
    name = workload["metadata"]["name"]
    return workload["kind"], name, f"{ready}/{desired}", health, workload_image(workload)


def format_table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def sort_key(workload: Manifest) -> tuple[int, str]:
    kind = workload.get("kind", "")
    rank = WORKLOAD_ORDER.index(kind) if kind in WORKLOAD_ORDER else len(WORKLOAD_ORDER)
    return rank, workload["metadata"]["name"]


def build_summary(
    resource: Manifest,
    workloads: Sequence[Manifest],
    cronjob: Manifest | None,
    *,
    now: datetime.datetime,
) -> str:
    """The readable summary of one installation (`now` dates the last backup)."""
    meta, status = resource["metadata"], resource.get("status") or {}
    conditions = describe_conditions(resource)
    spec = resource.get("spec") or {}
    paused = ["  paused:       yes (spec.paused: the operator changes nothing)"]
    lines = [
        f"MasterTradeDeployment {meta.get('namespace', '')}/{meta['name']}",
        f"  phase:        {describe_phase(resource)}",
        *(paused if spec.get("paused") else []),
        f"  trading:      {status.get('tradingEnvironment') or '-'}",
        f"  workloads:    {status.get('readyWorkloads') or '-'} ready (as last reported)",
        f"  conditions:   {conditions[0]}",
        *(f"                {line}" for line in conditions[1:]),
        f"  last backup:  {describe_backup(cronjob, now)}",
        "",
    ]
    rows = [workload_row(w) for w in sorted(workloads, key=sort_key)]
    lines += format_table([HEADERS, *rows]) if rows else ["no workloads found"]
    return "\n".join(lines) + "\n"


async def _read(login: Login, namespace: str | None, name: str) -> tuple[str, Installation | None]:
    kube = Kube(login)
    namespace = namespace or (await kube.connect()).namespace or "default"
    return namespace, await read_installation(kube, namespace, name)


def run_status(
    name: str, namespace: str | None, login: Login, stdout: TextIO, stderr: TextIO
) -> int:
    """Print the summary of `name` (in `namespace`, else the kubeconfig's); the exit code."""
    try:
        namespace, found = asyncio.run(_read(login, namespace, name))
    except (kopf.LoginError, *CONNECTION_ERRORS) as error:
        stderr.write(f"mastertrade-operator: cannot read from the cluster: {error}\n")
        return NOT_FOUND
    if found is None:
        stderr.write(
            f"mastertrade-operator: no MasterTradeDeployment {name!r} in namespace "
            f"{namespace!r} (see `kubectl get mtd -A`)\n"
        )
        return NOT_FOUND
    now = datetime.datetime.now(datetime.UTC)
    stdout.write(build_summary(found.resource, found.workloads, found.cronjob, now=now))
    return 0 if is_ready(found.resource) else NOT_READY

"""`mastertrade-operator status`: the pure summary, and the command against the emulated cluster
(real kopf reconciling, the command reading with its own client as it would from a kubeconfig)."""

from __future__ import annotations

import asyncio
import datetime
import io
from typing import Any

import kopf
import pytest

from mastertrade_operator.cli import main
from mastertrade_operator.kube import Connection, plain_login
from mastertrade_operator.runner import Assembly
from mastertrade_operator.summary import build_summary, format_age, is_ready
from tests.operator.apiserver import ApiServer
from tests.operator.cluster import NAMESPACE, create_mtd, path_of, request, roll_out

Manifest = dict[str, Any]
NOW = datetime.datetime(2026, 11, 25, 7, 0, tzinfo=datetime.UTC)


def condition(kind: str, status: str, reason: str, message: str) -> Manifest:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def resource(phase: str = "Ready", generation: int = 3, observed: int = 3) -> Manifest:
    ready = "True" if phase == "Ready" else "False"
    return {
        "metadata": {"name": "mastertrade", "namespace": "trading", "generation": generation},
        "spec": {},
        "status": {
            "phase": phase,
            "observedGeneration": observed,
            "readyWorkloads": "2/2",
            "tradingEnvironment": "paper",
            "conditions": [
                condition("Ready", ready, "AllWorkloadsReady", "all 2 workloads ready"),
                condition("Degraded", "False", "AllWorkloadsReady", "all 2 workloads ready"),
            ],
        },
    }


def workload(kind: str, name: str, ready: int, desired: int = 1, **status: int) -> Manifest:
    image = f"ghcr.io/mastertrade/mastertrade:{name}-1.2.0"
    return {
        "kind": kind,
        "metadata": {"name": name, "generation": 2},
        "spec": {"replicas": desired, "template": {"spec": {"containers": [{"image": image}]}}},
        "status": {"readyReplicas": ready, "observedGeneration": 2, **status},
    }


def cronjob(**status: str) -> Manifest:
    return {"kind": "CronJob", "metadata": {"name": "mastertrade-backup"}, "status": status}


WORKLOADS = [
    workload("Deployment", "mastertrade-strategy-service", 5, 5),
    workload("StatefulSet", "mastertrade-postgres", 1),
]


def test_summary_shows_phase_conditions_workloads_and_last_backup() -> None:
    backup = cronjob(lastSuccessfulTime="2026-11-25T02:00:05Z")
    text = build_summary(resource(), WORKLOADS, backup, now=NOW)
    assert "MasterTradeDeployment trading/mastertrade" in text
    assert "phase:        Ready (generation 3, observed 3)" in text
    assert "trading:      paper" in text
    assert "Ready=True (AllWorkloadsReady: all 2 workloads ready)" in text
    assert "last backup:  2026-11-25 02:00 UTC (4h ago)" in text
    table = text.split("\n\n", 1)[1].splitlines()
    assert table[0].split() == ["KIND", "NAME", "READY", "HEALTH", "IMAGE"]
    assert table[1].split() == [  # infrastructure first
        "StatefulSet",
        "mastertrade-postgres",
        "1/1",
        "Ready",
        "ghcr.io/mastertrade/mastertrade:mastertrade-postgres-1.2.0",
    ]
    assert table[2].split()[:4] == ["Deployment", "mastertrade-strategy-service", "5/5", "Ready"]


@pytest.mark.parametrize(
    ("backup", "expected"),
    [
        (None, "backups disabled (no backup CronJob)"),
        (cronjob(), "no backup yet"),
        (
            cronjob(lastScheduleTime="2026-11-25T06:58:00Z"),
            "no backup yet (last scheduled 2026-11-25 06:58 UTC (2m ago))",
        ),
    ],
)
def test_summary_says_when_there_is_no_backup(backup: Manifest | None, expected: str) -> None:
    assert f"last backup:  {expected}\n" in build_summary(resource(), [], backup, now=NOW)


def test_workload_health_tells_not_ready_from_updating() -> None:
    rows = [
        workload("Deployment", "a", 0, 2),
        workload("Deployment", "b", 2, 2, updatedReplicas=1),
        {**workload("Deployment", "c", 1), "metadata": {"name": "c", "generation": 3}},
    ]
    text = build_summary(resource(), rows, None, now=NOW)
    health = {
        line.split()[1]: line.split()[3]
        for line in text.splitlines()
        if line.startswith("Deployment")
    }
    assert health == {"a": "NotReady", "b": "Updating", "c": "Updating"}


def test_readiness_needs_phase_condition_and_a_current_status() -> None:
    assert is_ready(resource())
    assert not is_ready(resource(phase="Services"))
    stale = resource(generation=4, observed=3)
    assert not is_ready(stale)
    assert "stale" in build_summary(stale, [], None, now=NOW)


def test_a_resource_without_status_yet() -> None:
    fresh = {"metadata": {"name": "m", "namespace": "n", "generation": 1}, "spec": {}}
    text = build_summary(fresh, [], None, now=NOW)
    assert "Unknown (the operator has not reported yet)" in text
    assert "conditions:   none yet" in text and "no workloads found" in text
    assert not is_ready(fresh)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(5, "just now"), (125, "2m ago"), (5 * 3600 + 59, "5h ago"), (3 * 86400, "3d ago")],
)
def test_format_age(seconds: int, expected: str) -> None:
    assert format_age(NOW - datetime.timedelta(seconds=seconds), NOW) == expected


def test_status_without_a_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["status"])
    assert exit_info.value.code == 2
    assert "name" in capsys.readouterr().err


async def status_command(api: ApiServer, *argv: str) -> tuple[int, str, str]:
    """The console script in a thread of its own (it runs its own event loop), logged in to
    the emulator as it would be from a kubeconfig whose context's namespace is `default`."""
    server = str(api.url).rstrip("/")
    out, err = io.StringIO(), io.StringIO()

    login = plain_login(server, NAMESPACE)
    code = await asyncio.to_thread(main, ["status", *argv], stdout=out, stderr=err, login=login)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.operator
@pytest.mark.kmock(cls=ApiServer)
async def test_status_command_against_the_emulated_cluster(
    api: ApiServer, operator: Assembly
) -> None:
    code, out, err = await status_command(api, "nosuch", "-n", NAMESPACE)
    assert (code, out) == (2, "")
    assert "no MasterTradeDeployment 'nosuch' in namespace 'default'" in err

    await create_mtd(api, "mt", {})
    await roll_out(api, "mt")
    code, out, err = await status_command(api, "mt")
    assert (code, err) == (0, ""), out
    assert "phase:        Ready" in out and "last backup:  no backup yet" in out
    assert "StatefulSet  mt-mastertrade-postgres" in out

    backup = {"status": {"lastSuccessfulTime": "2026-11-25T02:00:00Z"}}
    await request(api, "PATCH", path_of("CronJob", "mt-mastertrade-backup") + "/status", backup)
    await request(api, "PATCH", path_of("MasterTradeDeployment", "mt"), {"spec": {"paused": True}})
    code, out, _ = await status_command(api, "mt", "-n", NAMESPACE)
    print(out)  # the real output, shown with `pytest -s`
    assert code == 1  # the new spec is not observed yet, or the phase is Paused
    assert "last backup:  2026-11-25 02:00 UTC (" in out


async def refuse_login() -> Connection:
    raise kopf.LoginError("no service account and no kubeconfig to log in with")


unreachable = plain_login("http://127.0.0.1:9", "trading")


@pytest.mark.parametrize(
    ("login", "message"),
    [(refuse_login, "no kubeconfig"), (unreachable, "Cannot connect to host 127.0.0.1:9")],
)
def test_status_without_a_cluster_is_a_clear_error(login: Any, message: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["status", "mt"], stdout=out, stderr=err, login=login) == 2
    assert out.getvalue() == ""
    assert "cannot read from the cluster" in err.getvalue() and message in err.getvalue()

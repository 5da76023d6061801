"""The optional Indexed Job of strategy generation: off by default; on, a CronJob at
GENERATION_TIME (UTC) whose Indexed Job has one completion per shard, runs `mastertrade
strategy-shard` with the strategy service's settings, its own environment (extraEnv) and
database URL, and whose pods the strategy-service Service never selects."""

from __future__ import annotations

from tests.helm import CHART, by_kind_and_name, of_kind, render, render_failure

NAME = "mastertrade-strategy-service-generation"
ON = "workloads.strategyService.generationJob.enabled=true"


def test_no_generation_job_by_default() -> None:
    assert NAME not in {m["metadata"]["name"] for m in of_kind(render(), "CronJob")}


def test_the_generation_job_runs_one_pod_per_shard_at_generation_time() -> None:
    manifests = render(
        sets=[
            ON,
            "workloads.strategyService.generationJob.shards=8",
            "workloads.strategyService.generationJob.parallelism=3",
            "settings.strategy.GENERATION_TIME=04:30",
        ]
    )
    objects = by_kind_and_name(manifests)
    cron = objects[("CronJob", NAME)]
    assert cron["spec"]["schedule"] == "30 4 * * *"
    assert cron["spec"]["timeZone"] == "Etc/UTC"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    assert (job["completions"], job["parallelism"]) == (8, 3)
    pod = job["template"]
    container = pod["spec"]["containers"][0]
    assert container["args"] == ["strategy-shard"]
    assert container["envFrom"] == [{"configMapRef": {"name": "mastertrade-strategy-service-env"}}]
    assert "DATABASE_URL" in {entry["name"] for entry in container["env"]}
    env = objects[("ConfigMap", "mastertrade-strategy-service-env")]["data"]
    assert env["GENERATION_TIME"] == "04:30"
    # the Service of strategy-service must not send requests to shard pods
    selector = objects[("Service", "mastertrade-strategy-service")]["spec"]["selector"]
    labels = pod["metadata"]["labels"]
    assert not selector.items() <= labels.items()
    assert labels["mastertrade.io/uses-postgres"] == "true"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_generation_job_reads_the_service_s_own_environment() -> None:
    """A run's last shard decides which strategies activate, on whichever pod stores it: the
    Job's pods must judge it as the service's do (here the laptop profile's confidence 0)."""
    manifests = render(values_files=[CHART / "values-kind.yaml"], sets=[ON])
    objects = by_kind_and_name(manifests)
    job = objects[("CronJob", NAME)]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    service = objects[("Deployment", "mastertrade-strategy-service")]["spec"]["template"]["spec"]
    extra = {"name": "STRATEGY_MIN_CONFIDENCE", "value": "0"}
    assert extra in service["containers"][0]["env"]
    assert extra in job["containers"][0]["env"]


def test_a_bad_shard_count_is_refused() -> None:
    error = render_failure(sets=[ON, "workloads.strategyService.generationJob.shards=0"])
    assert "shards" in error

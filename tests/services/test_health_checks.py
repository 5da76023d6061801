"""/health answers many callers with one round of dependency checks, on real infrastructure."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from mastertrade.catalog import find_service, load_service_module
from mastertrade.core.runtime import HEALTH_CHECK_MAX_AGE, Runtime
from mastertrade.core.settings import load_settings

pytestmark = pytest.mark.infra


async def test_concurrent_health_requests_share_one_round_of_checks(
    service_env: dict[str, str],
) -> None:
    spec = find_service("data_access_api")
    settings = load_settings(
        load_service_module(spec).Settings, spec.name, spec.dependencies, service_env
    )
    runtime = Runtime(spec, settings)
    await runtime.start()
    rounds = 0
    run_checks = runtime._run_checks

    async def counted() -> Mapping[str, bool]:
        nonlocal rounds
        rounds += 1
        return await run_checks()

    runtime._run_checks = counted  # type: ignore[method-assign]
    try:
        answers = await asyncio.gather(*(runtime.health() for _ in range(50)))
        assert {status for status, _ in answers} == {200}
        assert rounds == 1
        await runtime.health()
        assert rounds == 1, "a fresh result answers without checking again"
        await asyncio.sleep(HEALTH_CHECK_MAX_AGE)
        await runtime.health()
        assert rounds == 2, "an old result is checked again"
    finally:
        await runtime.stop()

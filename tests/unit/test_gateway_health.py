"""The gateway's health listings share one round of health checks: callers at the same time
wait for the same round, callers within HEALTH_FRESH_SECONDS get it as it was taken, and a
caller that goes away leaves the round to the others."""

from __future__ import annotations

import asyncio

from mastertrade.gateway.health import Listing, SharedHealth


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Checks:
    """A round of health checks that takes as long as the test lets it."""

    def __init__(self) -> None:
        self.rounds = 0
        self.release = asyncio.Event()
        self.fail = False

    async def __call__(self) -> Listing:
        self.rounds += 1
        number = self.rounds
        await self.release.wait()
        if self.fail:
            raise ConnectionError("the event loop's client is closed")
        return {"risk_manager": {"status": "healthy", "round": number}}


async def test_callers_at_the_same_time_share_one_round() -> None:
    shared, checks = SharedHealth(2.0, Clock()), Checks()
    callers = [asyncio.ensure_future(shared.get(checks)) for _ in range(50)]
    await asyncio.sleep(0)
    checks.release.set()
    answers = await asyncio.gather(*callers)
    assert checks.rounds == 1
    assert all(answer["risk_manager"]["round"] == 1 for answer in answers)


async def test_a_round_answers_for_its_freshness_then_a_new_one_is_taken() -> None:
    clock, checks = Clock(), Checks()
    shared = SharedHealth(2.0, clock)
    checks.release.set()
    first = await shared.get(checks)
    clock.now += 1.9
    within = await shared.get(checks)
    clock.now += 0.2  # 2.1 s after the round began
    after = await shared.get(checks)
    assert (first["risk_manager"]["round"], within["risk_manager"]["round"]) == (1, 1)
    assert after["risk_manager"]["round"] == 2 and checks.rounds == 2


async def test_a_caller_that_goes_away_leaves_the_round_to_the_others() -> None:
    shared, checks = SharedHealth(2.0, Clock()), Checks()
    leaving = asyncio.ensure_future(shared.get(checks))
    staying = asyncio.ensure_future(shared.get(checks))
    await asyncio.sleep(0)
    leaving.cancel()
    checks.release.set()
    answer = await staying
    assert leaving.cancelled() and answer["risk_manager"]["round"] == 1 and checks.rounds == 1


async def test_a_round_that_fails_fails_its_callers_and_the_next_caller_starts_another() -> None:
    shared, checks = SharedHealth(2.0, Clock()), Checks()
    checks.fail = True
    checks.release.set()
    callers = [asyncio.ensure_future(shared.get(checks)) for _ in range(3)]
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)
    checks.fail = False
    answer = await shared.get(checks)
    assert answer["risk_manager"]["round"] == 2 and checks.rounds == 2


def test_a_round_left_pending_by_a_closed_event_loop_does_not_hold_up_the_next_loop() -> None:
    """An app served by one event loop, then by another (a test client each time): the round the
    first loop never finished is not awaited from the second, which takes its own."""
    shared, stuck = SharedHealth(2.0, Clock()), Checks()
    first = asyncio.new_event_loop()

    async def leave_a_round_pending() -> asyncio.Future[Listing]:
        caller = asyncio.ensure_future(shared.get(stuck))
        await asyncio.sleep(0)
        return caller

    left = first.run_until_complete(leave_a_round_pending())
    first.close()
    answering = Checks()

    async def ask() -> Listing:
        answering.release.set()
        return await shared.get(answering)

    assert asyncio.run(ask())["risk_manager"]["round"] == 1
    assert (stuck.rounds, answering.rounds) == (1, 1) and not left.done()

"""The gateway's rate limiter against a stand-in for its Redis script (the real Redis is in
tests/services/test_gateway.py): exact for one replica, batches bounded by the limit, refusals
without round trips once the window is spent, and a bounded memory of callers."""

from __future__ import annotations

from typing import Any

from mastertrade.gateway import ratelimit
from mastertrade.gateway.ratelimit import RateLimiter, batch_for


class CountingRedis:
    """Runs the reservation script's INCRBY on a dict and counts the round trips."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}
        self.round_trips = 0

    def register_script(self, script: str) -> Any:
        assert "INCRBY" in script

        async def run(keys: list[str], args: list[int]) -> int:
            self.round_trips += 1
            self.counters[keys[0]] = self.counters.get(keys[0], 0) + int(args[1])
            return self.counters[keys[0]]

        return run


def test_batches_are_a_twentieth_of_the_limit_between_1_and_16() -> None:
    assert [batch_for(limit) for limit in (1, 39, 40, 100, 320, 10**6)] == [1, 1, 2, 5, 16, 16]


async def test_one_replica_is_exact_and_asks_redis_once_per_batch() -> None:
    redis = CountingRedis()
    limiter = RateLimiter(redis, window=3600)  # type: ignore[arg-type]
    decisions = [await limiter.hit("key:a", 100) for _ in range(130)]
    assert [d.allowed for d in decisions] == [True] * 100 + [False] * 30
    assert [d.remaining for d in decisions[:100]] == list(range(99, -1, -1))
    # 20 batches of 5, and the 30 refused asked no more: the window's counter never goes down
    assert redis.round_trips == 100 // batch_for(100)


async def test_a_limit_that_is_not_a_multiple_of_the_batch_is_still_exact() -> None:
    limiter = RateLimiter(CountingRedis(), window=3600)  # type: ignore[arg-type]
    decisions = [await limiter.hit("key:b", 43) for _ in range(50)]
    assert sum(d.allowed for d in decisions) == 43


async def test_callers_remembered_are_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(ratelimit, "MAX_CALLERS", 50)
    limiter = RateLimiter(CountingRedis(), window=3600)  # type: ignore[arg-type]
    for number in range(500):
        assert (await limiter.hit(f"ip:10.0.0.{number}", 100)).allowed
        assert len(limiter._budgets) <= 50

"""Live decisions agree with the plain event-loop reference: after the last close a strategy
buys exactly when its rule turned long on that close while it was flat, and sells exactly when
it turned flat while holding (holding = what the rule wanted one close earlier)."""

from __future__ import annotations

import pytest

from mastertrade.strategy.domain.families import AllOf, Strategy
from mastertrade.strategy.domain.live import latest_decisions
from tests.strategy.reference import leg_wants
from tests.strategy.test_engine_reference import random_walk
from tests.strategy.test_lookahead import EVERY_FAMILY


def reference_wishes(strategy: Strategy, closes: list[float]) -> list[bool]:
    """What the strategy wants after each close (every leg long, for a combination)."""
    legs = strategy.parts if isinstance(strategy, AllOf) else (strategy,)
    wanted = [False] * len(legs)
    out = []
    for t in range(len(closes)):
        history = closes[: t + 1]
        wanted = [leg_wants(leg, history, w) for leg, w in zip(legs, wanted, strict=True)]
        out.append(all(wanted))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_latest_decisions_match_the_reference(seed: int) -> None:
    opens, closes = random_walk(seed, 160, 0.01)
    wishes = {i: reference_wishes(s, closes) for i, s in enumerate(EVERY_FAMILY)}
    seen = set()
    for end in range(40, 161):
        decisions = latest_decisions(opens[:end], closes[:end], EVERY_FAMILY)
        for decision in decisions:
            wish = wishes[decision.index]
            now, before = wish[end - 1], wish[end - 2]
            expected = "buy" if now and not before else ("sell" if before and not now else None)
            assert decision.side == expected, (EVERY_FAMILY[decision.index], end)
            seen.add(decision.side)
    assert seen == {"buy", "sell", None}  # the walk exercises every outcome


def test_no_strategies_no_decisions() -> None:
    assert latest_decisions([1.0, 2.0], [1.0, 2.0], []) == []

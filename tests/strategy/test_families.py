"""Strategy families, the seeded generator and the backtest settings: ranges, errors, seeds."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from mastertrade.strategy.domain.engine import BacktestConfig, encode
from mastertrade.strategy.domain.families import (
    SINGLE_FAMILIES,
    AllOf,
    Donchian,
    Macd,
    RsiReversion,
    SmaCross,
)
from mastertrade.strategy.domain.generator import declared_range, generate_candidates


def test_the_same_seed_gives_the_same_distinct_candidates() -> None:
    first = generate_candidates(500, seed=42)
    assert first == generate_candidates(500, seed=42)
    assert len(set(first)) == 500
    assert first != generate_candidates(500, seed=43)
    assert generate_candidates(50, seed=42) == first[:50]


def test_every_family_and_combinations_are_drawn_within_their_declared_ranges() -> None:
    candidates = generate_candidates(800, seed=1)
    names = {c.model_dump()["family"] for c in candidates}
    assert names == {cls.model_fields["family"].default for cls in SINGLE_FAMILIES} | {"all_of"}
    for candidate in candidates:
        for leg in candidate.legs():
            for name in type(leg).model_fields:
                if name == "family":
                    continue
                low, high, step = declared_range(type(leg), name)
                value = float(getattr(leg, name))
                assert low <= value <= high, (leg, name)
                assert abs((value - low) / step - round((value - low) / step)) < 1e-6
        if isinstance(candidate, AllOf):
            assert candidate.parts[0].kind < candidate.parts[1].kind


def test_asking_for_more_candidates_than_allowed_is_refused() -> None:
    with pytest.raises(ValueError, match="ask for 0 to"):
        generate_candidates(-1, seed=0)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SmaCross(fast=50, slow=20), "fast \\(50\\) must be shorter than slow \\(20\\)"),
        (lambda: Macd(fast=12, slow=12, signal=9), "must be shorter"),
        (lambda: RsiReversion(period=14, lower=float("nan"), upper=70), "finite number"),
        (lambda: Donchian(entry=2, exit=20), "greater than or equal to 5"),
        (lambda: SmaCross.model_validate({"fast": 5, "slow": 20, "x": 1}), "Extra inputs are not"),
        (
            lambda: AllOf(parts=(SmaCross(fast=2, slow=9), SmaCross(fast=3, slow=9))),
            "two different families",
        ),
    ],
)
def test_bad_parameters_say_what_is_wrong(build: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        build()  # type: ignore[operator]


def test_models_are_frozen_and_encode_in_declared_order() -> None:
    strategy = AllOf(parts=(SmaCross(fast=5, slow=20), RsiReversion(period=14, lower=30, upper=70)))
    with pytest.raises(ValidationError):
        strategy.parts[0].fast = 6  # type: ignore[misc, union-attr]
    kinds, params = encode([strategy, Donchian(entry=20, exit=10)])
    assert kinds.tolist() == [[0, 2], [6, -1]]
    assert params[0].tolist() == [[5.0, 20.0, 0.0, 0.0], [14.0, 30.0, 70.0, 0.0]]
    assert strategy.label() == (
        "all_of(sma_cross(fast=5,slow=20),rsi_reversion(period=14,lower=30.0,upper=70.0))"
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("fee_rate", "NaN", "finite number"),
        ("initial_cash", "Infinity", "finite number"),
        ("fee_rate", "0.2", "less than 0.1"),
        ("fraction", "0", "greater than 0"),
        ("slippage", "-0.001", "greater than or equal to 0"),
    ],
)
def test_bad_backtest_settings_are_refused(field: str, value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BacktestConfig(**{field: Decimal(value)})

"""The seeded candidate generator: N distinct strategies drawn from the families' declared ranges.

Deterministic for a seed (one `random.Random`, families and fields visited in a fixed order).
Each single family is equally likely, and so is a combination (`all_of`) of two different ones.
Draws that break a family's own rule (fast not below slow) are drawn again; duplicates are
skipped, so asking for more than the ranges can give raises a clear error instead of looping.
"""

from __future__ import annotations

import random
from typing import Any

from annotated_types import Ge, Le
from pydantic import ValidationError

from mastertrade.strategy.domain.families import SINGLE_FAMILIES, AllOf, FamilyParams, Strategy

MAX_CANDIDATES = 1_000_000
ATTEMPTS_PER_CANDIDATE = 200


def declared_range(family: type[FamilyParams], name: str) -> tuple[float, float, float]:
    """A field's (low, high, step) as the family declares it."""
    info = family.model_fields[name]
    low = next(m.ge for m in info.metadata if isinstance(m, Ge))
    high = next(m.le for m in info.metadata if isinstance(m, Le))
    extra = info.json_schema_extra
    step = extra["step"] if isinstance(extra, dict) else 1
    return float(low), float(high), float(step)  # type: ignore[arg-type]


def _draw_field(rng: random.Random, family: type[FamilyParams], name: str) -> Any:
    low, high, step = declared_range(family, name)
    position = rng.randint(0, round((high - low) / step))
    if family.model_fields[name].annotation is int:
        return int(low) + position * int(step)
    return round(low + position * step, 10)


def draw_single(rng: random.Random, family: type[FamilyParams]) -> FamilyParams:
    """One valid parameter set of `family`, drawn uniformly on its declared grid."""
    for _ in range(ATTEMPTS_PER_CANDIDATE):
        values = {
            name: _draw_field(rng, family, name) for name in family.model_fields if name != "family"
        }
        try:
            return family(**values)
        except ValidationError:
            continue
    raise RuntimeError(f"could not draw valid parameters for {family.__name__}")  # pragma: no cover


def draw_strategy(rng: random.Random) -> Strategy:
    """One candidate: a single family, or all_of two different families (legs in code order)."""
    choice = rng.randrange(len(SINGLE_FAMILIES) + 1)
    if choice < len(SINGLE_FAMILIES):
        return draw_single(rng, SINGLE_FAMILIES[choice])
    first, second = sorted(rng.sample(range(len(SINGLE_FAMILIES)), 2))
    return AllOf(
        parts=(draw_single(rng, SINGLE_FAMILIES[first]), draw_single(rng, SINGLE_FAMILIES[second]))
    )


def generate_candidates(count: int, seed: int) -> list[Strategy]:
    """`count` distinct candidates for `seed`; the same seed always gives the same list."""
    if not 0 <= count <= MAX_CANDIDATES:
        raise ValueError(f"candidate count {count}: ask for 0 to {MAX_CANDIDATES}")
    rng = random.Random(seed)
    seen: set[Strategy] = set()
    chosen: list[Strategy] = []
    attempts = 0
    while len(chosen) < count:
        attempts += 1
        if attempts > count * ATTEMPTS_PER_CANDIDATE:
            raise ValueError(f"only {len(chosen)} distinct candidates found: ask for fewer")
        candidate = draw_strategy(rng)
        if candidate not in seen:
            seen.add(candidate)
            chosen.append(candidate)
    return chosen

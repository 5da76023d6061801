"""Triangular arbitrage on one venue: A -> B -> C -> A through three pairs, both directions.

Each leg buys a pair's base at the ask (spending quote) or sells it at the bid (receiving
quote); the fee is taken from what is received. The size is the largest starting amount that
no leg's top-of-book quantity limits; the profit is what is left after the cycle, in the
starting asset. Conversion is linear, so the bound of leg i, in starting units, is its
capacity divided by the product of the rates of the legs before it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import combinations, pairwise

from mastertrade.arbitrage.domain.opportunity import Leg, Opportunity, Side, exact
from mastertrade.core.market_messages import BookTicker

BPS = Decimal(10_000)


@dataclass(frozen=True)
class Pair:
    """A symbol and its two assets: BTCUSDT is base BTC, quote USDT."""

    base: str
    quote: str

    @property
    def symbol(self) -> str:
        return f"{self.base}{self.quote}"


@dataclass(frozen=True)
class Triangle:
    """Three assets, closed by three pairs; cycles start and end at `start`."""

    start: str
    middle: tuple[str, str]
    pairs: tuple[Pair, Pair, Pair]

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(pair.symbol for pair in self.pairs)

    def cycles(self) -> tuple[tuple[str, str, str, str], ...]:
        """Both directions: start -> b -> c -> start and start -> c -> b -> start."""
        first, second = self.middle
        return (self.start, first, second, self.start), (self.start, second, first, self.start)


def parse_pairs(text: str) -> tuple[Pair, ...]:
    """`BTC/USDT,ETH/BTC` -> pairs; raises ValueError naming the entry that is not BASE/QUOTE."""
    pairs = []
    for entry in (item.strip() for item in text.split(",")):
        base, slash, quote = entry.upper().partition("/")
        if not slash or not base.isalnum() or not quote.isalnum() or base == quote:
            raise ValueError(f"{entry!r} is not BASE/QUOTE (e.g. BTC/USDT)")
        pairs.append(Pair(base, quote))
    return tuple(pairs)


def find_triangles(pairs: tuple[Pair, ...]) -> tuple[Triangle, ...]:
    """Every three assets that three of the pairs connect; the start is the asset that is
    most often a quote among them (USDT in BTC/USDT, ETH/BTC, ETH/USDT)."""
    found = []
    for chosen in combinations(pairs, 3):
        assets = Counter(a for pair in chosen for a in (pair.base, pair.quote))
        if len(assets) != 3 or set(assets.values()) != {2}:
            continue
        quotes = Counter(pair.quote for pair in chosen)
        start = min(assets, key=lambda asset: (-quotes[asset], asset))
        middle = sorted(asset for asset in assets if asset != start)
        found.append(Triangle(start, (middle[0], middle[1]), (chosen[0], chosen[1], chosen[2])))
    return tuple(found)


@dataclass(frozen=True)
class _Step:
    pair: Pair
    side: Side
    quote: BookTicker
    rate: Decimal
    capacity: Decimal


def _step(pair: Pair, side: Side, quote: BookTicker, keep: Decimal) -> _Step:
    if side == "buy":
        return _Step(pair, side, quote, keep / quote.ask, quote.ask * quote.ask_qty)
    return _Step(pair, side, quote, quote.bid * keep, quote.bid_qty)


def _steps(
    cycle: tuple[str, ...], pairs: tuple[Pair, ...], quotes: dict[str, BookTicker], keep: Decimal
) -> list[_Step]:
    steps = []
    for held, wanted in pairwise(cycle):
        for pair in pairs:
            if (pair.quote, pair.base) == (held, wanted):
                steps.append(_step(pair, "buy", quotes[pair.symbol], keep))
            elif (pair.base, pair.quote) == (held, wanted):
                steps.append(_step(pair, "sell", quotes[pair.symbol], keep))
    return steps


def evaluate_cycle(
    triangle: Triangle,
    cycle: tuple[str, ...],
    quotes: dict[str, BookTicker],
    fee_bps: Decimal,
    now: datetime,
) -> Opportunity | None:
    """The opportunity of one direction, or None when it does not end above its start."""
    steps = _steps(cycle, triangle.pairs, quotes, 1 - fee_bps / BPS)
    rate, size = Decimal(1), None
    for step in steps:
        bound = step.capacity / rate
        size = bound if size is None or bound < size else size
        rate *= step.rate
    if size is None or rate <= 1:
        return None
    legs, amount = [], size
    for step in steps:
        out = amount * step.rate
        price = step.quote.ask if step.side == "buy" else step.quote.bid
        legs.append(
            Leg(step.quote.venue, step.pair.symbol, step.side, price, exact(amount), exact(out))
        )
        amount = out
    return Opportunity(
        kind="triangular",
        venue=steps[0].quote.venue,
        route=" -> ".join(cycle),
        start_asset=triangle.start,
        start_amount=exact(size),
        expected_profit=exact(amount - size),
        profit_bps=((rate - 1) * BPS).quantize(Decimal("0.0001"), rounding="ROUND_DOWN"),
        legs=tuple(legs),
        detected_at=now,
    )


def evaluate_triangle(
    triangle: Triangle, quotes: dict[str, BookTicker], fee_bps: Decimal, now: datetime
) -> list[Opportunity]:
    """Both directions of a triangle whose three quotes are given (fresh, of one venue)."""
    if not triangle.symbols <= quotes.keys():
        return []
    found = (evaluate_cycle(triangle, c, quotes, fee_bps, now) for c in triangle.cycles())
    return [opportunity for opportunity in found if opportunity is not None]

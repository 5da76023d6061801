"""Strategy families: typed, frozen parameter models whose fields declare their own ranges.

Each field's bounds (`ge`/`le`) validate input AND define where the generator draws from, so a
range is written once. Every family is a long-only rule with its own entry and exit conditions
computed on a bar's close (see `signals.py`); `AllOf` holds a position only while every leg wants
one. `engine_code()` turns a model into the numbers the backtest kernel reads.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PARAM_SLOTS = 4


class Kind(IntEnum):
    """The kernel's code of each single family (its row in the kernel's dispatch)."""

    SMA_CROSS = 0
    EMA_CROSS = 1
    RSI_REVERSION = 2
    BOLLINGER_BREAKOUT = 3
    MACD = 4
    MOMENTUM = 5
    DONCHIAN = 6


def param(low: float, high: float, step: float, description: str) -> Any:
    """A field with its declared range: bounds for validation, plus a step for the generator."""
    extra: dict[str, Any] = {"step": step}
    if isinstance(step, float):
        return Field(
            ge=low, le=high, allow_inf_nan=False, description=description, json_schema_extra=extra
        )
    return Field(ge=low, le=high, description=description, json_schema_extra=extra)


class FamilyParams(BaseModel):
    """What every single family shares: frozen, no unknown fields, an engine code."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: ClassVar[Kind]

    def engine_params(self) -> tuple[float, ...]:
        """The family's numbers in the kernel's slot order (the fields' declared order)."""
        values = [float(v) for k, v in self.__dict__.items() if k != "family"]
        return tuple(values + [0.0] * (PARAM_SLOTS - len(values)))

    def legs(self) -> tuple[FamilyParams, ...]:
        """The single families this strategy is made of."""
        return (self,)

    def label(self) -> str:
        """A short, stable, human-readable name, e.g. `sma_cross(fast=10,slow=50)`."""
        args = ",".join(f"{k}={v}" for k, v in self.__dict__.items() if k != "family")
        return f"{self.__dict__['family']}({args})"


def _require_faster(fast: int, slow: int, what: str) -> None:
    if fast >= slow:
        raise ValueError(f"{what}: fast ({fast}) must be shorter than slow ({slow})")


class SmaCross(FamilyParams):
    """Long from the bar the fast SMA crosses above the slow one until it crosses below."""

    kind: ClassVar[Kind] = Kind.SMA_CROSS
    family: Literal["sma_cross"] = "sma_cross"
    fast: int = param(2, 200, 1, "fast simple moving average, bars")
    slow: int = param(3, 1440, 1, "slow simple moving average, bars")

    @model_validator(mode="after")
    def _ordered(self) -> SmaCross:
        _require_faster(self.fast, self.slow, "sma_cross")
        return self


class EmaCross(FamilyParams):
    """Long from the bar the fast EMA crosses above the slow one until it crosses below."""

    kind: ClassVar[Kind] = Kind.EMA_CROSS
    family: Literal["ema_cross"] = "ema_cross"
    fast: int = param(2, 200, 1, "fast exponential moving average span, bars")
    slow: int = param(3, 1440, 1, "slow exponential moving average span, bars")

    @model_validator(mode="after")
    def _ordered(self) -> EmaCross:
        _require_faster(self.fast, self.slow, "ema_cross")
        return self


class RsiReversion(FamilyParams):
    """Mean reversion: enter when Wilder's RSI falls below `lower`, exit when above `upper`."""

    kind: ClassVar[Kind] = Kind.RSI_REVERSION
    family: Literal["rsi_reversion"] = "rsi_reversion"
    period: int = param(2, 200, 1, "RSI period, bars")
    lower: float = param(5.0, 45.0, 1.0, "oversold level that opens a position, 0-100")
    upper: float = param(55.0, 95.0, 1.0, "overbought level that closes it, 0-100")


class BollingerBreakout(FamilyParams):
    """Enter when the close breaks above mean + width x std; exit when it falls below the mean."""

    kind: ClassVar[Kind] = Kind.BOLLINGER_BREAKOUT
    family: Literal["bollinger_breakout"] = "bollinger_breakout"
    period: int = param(5, 500, 1, "band window, bars")
    width: float = param(0.5, 4.0, 0.1, "band half-width in population standard deviations")


class Macd(FamilyParams):
    """Long from the bar MACD crosses above its signal line until it crosses below."""

    kind: ClassVar[Kind] = Kind.MACD
    family: Literal["macd"] = "macd"
    fast: int = param(2, 100, 1, "fast EMA span, bars")
    slow: int = param(5, 400, 1, "slow EMA span, bars")
    signal: int = param(2, 100, 1, "signal-line EMA span, bars")

    @model_validator(mode="after")
    def _ordered(self) -> Macd:
        _require_faster(self.fast, self.slow, "macd")
        return self


class Momentum(FamilyParams):
    """Enter when the return over `lookback` bars exceeds `threshold`; exit below -threshold."""

    kind: ClassVar[Kind] = Kind.MOMENTUM
    family: Literal["momentum"] = "momentum"
    lookback: int = param(1, 1440, 1, "return window, bars")
    threshold: float = param(0.0, 0.1, 0.0005, "return that opens a position, e.g. 0.01 = 1%")


class Donchian(FamilyParams):
    """Enter on a close above the previous `entry` bars' highest close; exit below the previous
    `exit` bars' lowest close (channels of closes, the current bar excluded)."""

    kind: ClassVar[Kind] = Kind.DONCHIAN
    family: Literal["donchian"] = "donchian"
    entry: int = param(5, 1440, 1, "breakout channel, bars")
    exit: int = param(5, 1440, 1, "exit channel, bars")


SingleParams = Annotated[
    SmaCross | EmaCross | RsiReversion | BollingerBreakout | Macd | Momentum | Donchian,
    Field(discriminator="family"),
]
SINGLE_FAMILIES: tuple[type[FamilyParams], ...] = (
    SmaCross,
    EmaCross,
    RsiReversion,
    BollingerBreakout,
    Macd,
    Momentum,
    Donchian,
)


class AllOf(BaseModel):
    """A combination: long only while both legs (two different families) want to be long."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    family: Literal["all_of"] = "all_of"
    parts: tuple[SingleParams, SingleParams]

    @model_validator(mode="after")
    def _distinct(self) -> AllOf:
        first, second = self.parts
        if first.kind == second.kind:
            raise ValueError(f"all_of: use two different families, both parts are {first.family}")
        return self

    def legs(self) -> tuple[FamilyParams, ...]:
        """The single families this strategy is made of."""
        return tuple(self.parts)

    def label(self) -> str:
        """A short, stable, human-readable name."""
        return "all_of(" + ",".join(leg.label() for leg in self.parts) + ")"


StrategyParams = Annotated[
    SmaCross | EmaCross | RsiReversion | BollingerBreakout | Macd | Momentum | Donchian | AllOf,
    Field(discriminator="family"),
]
Strategy = FamilyParams | AllOf
MAX_LEGS = 2

"""Settings of strategy_service: MAX_ACTIVE_STRATEGIES, DAILY_GENERATION_COUNT, GENERATION_TIME."""

from __future__ import annotations

from datetime import time
from typing import Any

from pydantic import Field, field_validator

from mastertrade.core.settings import ServiceSettings


class StrategySettings(ServiceSettings):
    """The seed's strategy figures (10 active, 500 generated daily at 03:00 UTC)."""

    max_active_strategies: int = Field(
        default=10, ge=1, le=10_000, description="a whole number of strategies, 1 to 10000"
    )
    daily_generation_count: int = Field(
        default=500, ge=0, le=1_000_000, description="a whole number, 0 to 1000000"
    )
    generation_time: time = Field(
        default=time(3, 0), description="a time of day in UTC as HH:MM, e.g. 03:00"
    )

    @field_validator("generation_time", mode="before")
    @classmethod
    def _parse_hh_mm(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        hours, sep, minutes = value.strip().partition(":")
        if not sep or not (hours.isdigit() and minutes.isdigit()) or len(minutes) != 2:
            raise ValueError("not a time of day as HH:MM")
        if not (0 <= int(hours) <= 23 and 0 <= int(minutes) <= 59):
            raise ValueError("hours must be 00-23 and minutes 00-59")
        return time(int(hours), int(minutes))

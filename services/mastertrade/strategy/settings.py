"""Settings of strategy_service: MAX_ACTIVE_STRATEGIES, DAILY_GENERATION_COUNT, GENERATION_TIME
(defined in the model's `StrategySettings`)."""

from __future__ import annotations

from datetime import time

from mastertrade.core.settings import ServiceSettings
from mastertrade_model.settings import StrategySettings as StrategyGroup


class StrategySettings(ServiceSettings, StrategyGroup):
    """The seed's strategy figures (10 active, 500 generated daily at 03:00 UTC)."""

    def generation_at(self) -> time:
        """GENERATION_TIME as a time of day (UTC)."""
        hours, minutes = self.generation_time.split(":")
        return time(int(hours), int(minutes))
